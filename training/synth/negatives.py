"""Hard-negative templates (kind="negative").

They contain things that look like PII but are not under our label policy: order/tracking/invoice/ticket numbers,
versions and build numbers, prices, meeting/deadline/release dates, part numbers, placeholder e-mails and keys in
documentation, product names, genres, regions, public figures in news-like context, hashes and code. Most have no
spans; a few (``negmix_*``) also contain a real PII value, which *is* labelled.
"""

from __future__ import annotations

from probeguard.training.synth.render import Template, neg

NEGATIVE_TEMPLATES: tuple[Template, ...] = (
    # numbers and identifiers that are not PII
    neg(
        "neg_order_status",
        "Where is my order {order_no}? The tracking number {tracking} hasn't updated since {date_event}.",
        casual=True,
    ),
    neg("neg_invoice_due", "Invoice {invoice} for {price} is due on {date_event}. Please quote ticket {ticket}."),
    neg(
        "neg_version_crash",
        "After upgrading to {version} the app crashes on start; rolling back to {version2} fixed it. OS build {build}.",
        casual=True,
    ),
    neg(
        "neg_price_compare",
        "The {product} is {price} in one shop and {price2} in the other. Which deal is better?",
        casual=True,
    ),
    neg("neg_meeting_move", "Can we move the meeting from {date_event} to {date_event2} at {time}?", casual=True),
    neg("neg_deadline", "The grant deadline is {date_event} and results are announced on {date_event2}."),
    neg("neg_release_date", "The {product} launched on {date_event}; firmware {version} followed a few weeks later."),
    neg(
        "neg_part_number",
        "I need a replacement filter, part no. {part_no}, compatible with model {part_no2}.",
        casual=True,
    ),
    neg("neg_ticket_escalated", "Support ticket {ticket} was escalated to tier 2, reference {order_no}."),
    neg("neg_card_last4", "My card ending in {last4} was declined for {price} on order {order_no}.", casual=True),
    neg("neg_request_id", "Request {uuid} failed with a 502, retry after {count} seconds."),
    neg("neg_hashes", "Release {version} is tagged at commit {sha} and the tarball's SHA-256 is {checksum}."),
    neg("neg_hotline_like", "Call the order hotline and enter your order number {order_no} followed by the # key."),
    neg(
        "neg_serial_warranty",
        "Warranty claim for serial {part_no}: purchased {date_event}, receipt total {price}.",
        casual=True,
    ),
    neg("neg_stats", "Sales grew {percent} year over year to {price}, according to the quarterly report."),
    # documentation placeholders
    neg(
        "neg_docs_sender",
        "In the docs, set the sender to {placeholder_email} and replace it with your own address before deploying.",
    ),
    neg(
        "neg_docs_env",
        "Example config:\n\nSMTP_USER={placeholder_email}\nSMTP_PASSWORD=<your-password>\nAPI_KEY=YOUR_API_KEY_HERE",
    ),
    neg("neg_docs_curl", 'curl -H "Authorization: Bearer $API_TOKEN" https://api.example.com/v1/items?limit={count}'),
    neg("neg_docs_ip", "Point the client at {doc_ip}:{port} as shown in the quick-start guide."),
    neg(
        "neg_docs_signup",
        "To test the signup form, enter {placeholder_email} as the email and any password with {count} characters.",
    ),
    # capitalised words, places, products
    neg("neg_genres", "I'm in the mood for {genre} or maybe {genre2}. Anything good from {year}?", casual=True),
    neg(
        "neg_region_trip",
        "We're planning a trip to {region} around {date_event}. Is the weather okay then?",
        casual=True,
    ),
    neg("neg_city_weather", "What's the weather usually like in {city} in spring?", casual=True),
    neg("neg_product_compare", "Is the {product} worth it compared to the {product2}?", casual=True),
    neg("neg_recipe", "Can I swap butter for olive oil in a Victoria Sponge? I'm baking for {count} people."),
    # public figures, history, fiction (not PII by policy)
    neg(
        "neg_news_meeting",
        "{public_figure} met {public_figure2} on {date_event} to discuss trade tariffs, officials said.",
    ),
    neg("neg_news_quote", "In an interview, {public_figure} said the new policy would take effect in {year}."),
    neg("neg_sports", "{athlete} was the talk of the final; the team now leads the table by {count} points."),
    neg("neg_history", "Write a short essay about {historical} and their influence on modern science."),
    neg("neg_fiction", "Who would win a debate, {fictional} or {fictional2}?", casual=True),
    # code
    neg(
        "neg_code_env",
        'def send_mail(to: str, subject: str) -> None:\n    password = os.environ["SMTP_PASSWORD"]\n'
        "    server.login(settings.SMTP_USER, password)",
    ),
    neg("neg_code_sql", "SELECT user_id, email, created_at FROM users WHERE created_at > '{date_iso}' LIMIT {count};"),
    neg("neg_code_regex", "Why does my regex ^[\\w.+-]+@[\\w-]+\\.[\\w.]+$ fail on addresses with subdomains?"),
    neg(
        "neg_code_validate",
        "Write a {prog_lang} function validate_iban(value) that checks the length and the mod-97 checksum.",
    ),
    neg("neg_code_log", "{iso_ts} INFO worker-{count} processed job {uuid} in {count}ms (version {version})"),
    # ordinary chat
    neg("neg_chat_question", "{question}"),
    neg("neg_chat_topic", "Explain {topic} in simple terms, please.", casual=True),
    neg("neg_chat_two", "{question} Also, could you explain {topic}?", casual=True),
    neg("neg_chat_language", "What's the best way to learn {prog_lang} if I already know {prog_lang2}?", casual=True),
    neg("neg_chat_thanks", "thanks, that worked! one more thing: {question}", casual=True),
    # real PII present next to distractors
    neg("negmix_order_name", "Hi, {name} here - order {order_no} (invoice {invoice}) arrived damaged.", casual=True),
    neg(
        "negmix_agenda_email",
        "Please send the agenda for the {date_event} meeting to {email}; comments are due {date_event2}.",
    ),
    neg("negmix_version_user", "User {username} reports that {version} breaks the CSV export, see ticket {ticket}."),
    # other languages
    neg("de_neg_order", "Meine Bestellung {order_no} ist noch nicht angekommen, Sendungsnummer {tracking}.", lang="de"),
    neg("de_neg_meeting", "Das Meeting ist auf den {date_event} um {time} Uhr verschoben.", lang="de"),
    neg("fr_neg_meeting", "La réunion est reportée au {date_event} à {time}.", lang="fr"),
    neg("es_neg_price", "¿El {product} cuesta {price} o {price2}?", lang="es"),
    neg("it_neg_version", "Dopo l'aggiornamento alla versione {version} l'app non si avvia più.", lang="it"),
    neg("nl_neg_invoice", "Factuur {invoice} van {price} moet voor {date_event} betaald zijn.", lang="nl"),
    neg("ja_neg_order", "注文番号{order_no}の商品がまだ届きません。追跡番号は{tracking}です。", lang="ja"),
    neg("ja_neg_meeting", "次の会議は{date_event}の{time}からです。", lang="ja"),
)
