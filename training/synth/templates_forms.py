"""Form-like, e-mail and document PII templates (forms, signatures, forwarded mails, tables, vCards)."""

from __future__ import annotations

from probeguard.training.synth.render import Template, pii

FORM_TEMPLATES: tuple[Template, ...] = (
    pii("form_basic", "Name: {name}\nEmail: {email}\nPhone: {phone}"),
    pii(
        "form_identity",
        "First name: {first}\nLast name: {last}\nDate of birth: {dob}\nAddress:\n{address}\n{id_name}: {national_id}",
    ),
    pii("form_payment", "Cardholder: {name}\nCard number: {card}\nExpiry: {expiry}\nBilling address: {address_line}"),
    pii("form_bank", "Account holder: {name}\nIBAN: {iban}\nReference: {invoice}"),
    pii(
        "form_csv",
        "Can you turn this into a table?\nname,email,phone,birthday\n{name},{email},{phone},{dob}\n"
        "{name2},{email2},{phone2},{dob2}",
    ),
    pii("form_json", 'Why does this fail validation?\n{"name": "{name}", "email": "{email}", "signup_ip": "{ip}"}'),
    pii("form_yaml", 'customer:\n  name: {name}\n  email: {email}\n  phone: "{phone}"\n  address: "{address_line}"'),
    pii(
        "mail_signature",
        "Thanks for getting back to me so quickly.\n\nBest regards,\n{name}\n{job} | {company}\nT: {phone}\n"
        "E: {work_email}",
    ),
    pii(
        "mail_forwarded",
        "---------- Forwarded message ---------\nFrom: {name} <{email}>\nDate: {date_event}\n"
        "Subject: Re: invoice {invoice}\nTo: {name2} <{email2}>\n\nHi {first2},\n\nplease find the corrected "
        "invoice attached.\n\n{first}",
    ),
    pii(
        "mail_make_polite",
        "Make this email more polite:\n\n\"{first2}, I've left my number {phone} three times and nobody calls "
        'back. Fix my internet or I cancel. {name}"',
    ),
    pii("letter_header", "{name}\n{address}\n\n{date_event}\n\nDear Sir or Madam,\n\nI am writing to complain about"),
    pii("shipping_label", "SHIP TO:\n{name}\n{address}\nTel. {phone}"),
    pii(
        "vcard",
        "BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;TYPE=CELL:{mobile}\nEMAIL:{email}\nURL:{personal_url}\nEND:VCARD",
    ),
    pii("hr_record", "Employee: {name} | DOB: {dob} | {id_name}: {national_id} | Salary account: {iban}"),
    pii(
        "booking_confirmation",
        "Booking for {name} ({email}), {count} guests, check-in {date_event}. Contact phone: {phone}.",
    ),
    pii(
        "markdown_users",
        "| Name | Username | Email |\n|---|---|---|\n| {name} | {username} | {email} |\n"
        "| {name2} | {username2} | {email2} |",
    ),
    pii("emergency_contact", "Emergency contact: {name2} (sister), {phone2}. Allergies: none.", casual=True),
    pii("delivery_note", "Deliver to {name} at {address_line}. If nobody answers call {mobile}.", casual=True),
    pii(
        "mail_intro_colleague",
        "Hi {first2},\n\nlet me introduce {name}, who is joining us as {job}. You can reach them at "
        "{work_email} or {phone}.\n\nCheers,\n{first3}",
    ),
    pii("form_messy_oneline", "name {name} email {email} phone {phone} address {address_line}", casual=True),
    pii(
        "form_rental_application",
        "Applicant: {name}\nDate of birth: {dob}\nCurrent address:\n{address}\nPrevious landlord: {name2}, "
        "{phone2}\n{id_name}: {national_id}",
    ),
    pii(
        "mail_out_of_office",
        "I'm out of the office until {date_event}. For urgent matters please contact {name2} at {work_email2} "
        "or call {phone2}.",
    ),
    pii(
        "form_order_summary",
        "Order {order_no}\nCustomer: {name}\nEmail: {email}\nShipping: {address_line}\nPaid with card {card}",
    ),
    pii("profile_links", "About me\nWebsite: {personal_url}\nSocial: {social_url}\nContact: {email}"),
    pii(
        "mail_reply_quote",
        "On {date_event}, {name} <{email}> wrote:\n> could you send me the contract?\n\nSure, attached. My direct "
        "line is {phone}.",
    ),
)
