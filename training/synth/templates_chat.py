"""English chat-style PII templates: what users type to a support bot or an assistant."""

from __future__ import annotations

from probeguard.training.synth.render import Template, pii

CHAT_TEMPLATES: tuple[Template, ...] = (
    pii(
        "chat_update_email",
        "Hi, can you update the email on my account? It should be {email} now, the old one no longer works.",
        casual=True,
    ),
    pii("chat_intro_phone", "hello my name is {name} and my phone number is {phone}, please call me back", casual=True),
    pii(
        "chat_moved_address",
        "I moved last month. My new address is:\n{address}\nCan you make sure my next order goes there?",
    ),
    pii("chat_refund_iban", "For the refund please use my IBAN {iban} (account holder: {name}). Thanks!"),
    pii(
        "chat_double_charge",
        "I was charged twice on my card {card} for order {order_no}. Can you look into it?",
        casual=True,
    ),
    pii(
        "chat_login_fail",
        "I can't log in. username is {username} and I've tried the password {password} like ten times",
        casual=True,
    ),
    pii("chat_my_password", "my password is {password}", casual=True),
    pii("chat_pw_colon", "pw: {password}", casual=True),
    pii("chat_shared_login", "the login for the shared account is {username} / {password}", casual=True),
    pii("chat_forgot_pw", "I think I changed my password to {password} yesterday but it doesn't work", casual=True),
    pii("chat_wifi_note", "wifi is HomeNet and the password is {password}", casual=True),
    pii("chat_pw_reset_done", "ok I reset it, new password is {password}", casual=True),
    pii("chat_verify_dob", "For verification: full name {name}, date of birth {dob}."),
    pii(
        "chat_tax_form",
        "The tax form asks for my {id_name}. Mine is {national_id} - which box does it go in?",
        casual=True,
    ),
    pii("chat_ip_blocked", "My IP {ip} got blocked after too many login attempts, can you whitelist it?", casual=True),
    pii(
        "chat_portfolio",
        "Here's my portfolio {personal_url} and my profile {social_url}. Could you write a short bio for me?",
    ),
    pii("chat_newsletter", "Sign me up for the newsletter: {first} {last}, {email}, born {dob}.", casual=True),
    pii(
        "chat_friend_joins",
        "my friend {name2} wants to join too, their number is {phone2} and email is {email2}",
        casual=True,
    ),
    pii("chat_its_me_again", "hey its {first} again, my email is {email} and my number {phone} thx", casual=True),
    pii(
        "chat_replacement_addr",
        "please send the replacement to {address_line} asap, the first one was broken",
        casual=True,
    ),
    pii(
        "chat_transfer_unpaid",
        "I paid from account {iban} on {date_event}, reference {invoice}. Why does it still say unpaid?",
        casual=True,
    ),
    pii("chat_card_details", "Card number {card}, expires {expiry}. Name on the card is {name}."),
    pii("chat_wifi_password", "the wifi password at my place is {password} if the technician needs it", casual=True),
    pii(
        "chat_bio_rewrite",
        "Rewrite this bio to sound friendlier: {name} is a {job} at {company}. Contact: {work_email}, {phone}.",
    ),
    pii(
        "chat_landlord_letter",
        "Can you write a letter to my landlord {name2}? I live at {address_line} and the heating has been "
        "broken since {date_event}.",
    ),
    pii(
        "chat_appointment",
        "I'm {name}, born {dob}. My {id_name} is {national_id}. I need to move my appointment on {date_event}.",
        casual=True,
    ),
    pii(
        "chat_account_recovery",
        "I lost access to my account. Old username: {username}. Recovery email: {email}. "
        "Last time I logged in was from {ip}.",
    ),
    pii(
        "chat_pet_sitter",
        "Write a note for the pet sitter: call me on {mobile} if anything happens, my neighbour {first2} has "
        "a spare key.",
    ),
    pii("chat_verify_block", "To verify it's really me:\n{name}\n{address}\n{phone}"),
    pii("chat_api_key_401", "why does my api key {api_key} keep returning 401??", casual=True),
    pii("chat_remember_pw", "can you remember these for me: bank pw {password}, email pw {password2}", casual=True),
    pii(
        "chat_admin_lockout",
        "user {username} keeps getting locked out when connecting from {ip}, I'm the admin",
        casual=True,
    ),
    pii(
        "chat_resume_header",
        "Format this as a resume header:\n{name}\n{address_line}\n{phone} | {email} | {personal_url}",
    ),
    pii(
        "chat_gift_delivery",
        "I'd like to send a gift to my friend {name2}. The address is {address_line} and the phone is {phone2}.",
        casual=True,
    ),
    pii("chat_ssn_typed", "my {id_name} {national_id} and dob {dob}, what else do you need", casual=True),
    pii(
        "chat_two_people",
        "We're two on the booking: {name} ({email}) and {name2} ({email2}). Both born in the 90s if that matters.",
    ),
    pii("chat_find_me_online", "You can find me at {social_url} or just email {email}.", casual=True),
    pii("chat_card_and_addr", "Use my Visa {card} and ship to:\n{name}\n{address}\nPhone for the courier: {phone}"),
    pii(
        "chat_cancel_sub",
        "Please cancel my subscription. Account email {email}, username {username}. I don't want to be charged "
        "again on {date_event}.",
    ),
    pii("chat_messy_intro", "ok so im {first} {last} my mobile is {mobile} and i live on {street}", casual=True),
)
