"""PII templates written in the locale's own language (German, French, Spanish, Italian, Dutch, Japanese)."""

from __future__ import annotations

from probeguard.training.synth.render import Template, pii

INTL_TEMPLATES: tuple[Template, ...] = (
    # German
    pii(
        "de_moved",
        "Hallo, ich bin umgezogen. Meine neue Adresse lautet:\n{address}\nBitte ändern Sie das in meinem Kundenkonto.",
        lang="de",
    ),
    pii(
        "de_contact",
        "Mein Name ist {name}, Sie erreichen mich unter {phone} oder per Mail an {email}.",
        lang="de",
        casual=True,
    ),
    pii(
        "de_refund", "Bitte überweisen Sie die Erstattung auf mein Konto: IBAN {iban}, Kontoinhaber {name}.", lang="de"
    ),
    pii("de_form", "Vorname: {first}\nNachname: {last}\nGeburtsdatum: {dob}\n{id_name}: {national_id}", lang="de"),
    pii(
        "de_login",
        "ich komme nicht mehr rein, benutzername {username} und passwort {password} gehen nicht",
        lang="de",
        casual=True,
    ),
    # French
    pii(
        "fr_support",
        "Bonjour, je m'appelle {name}. Mon numéro est le {phone} et mon adresse e-mail {email}.",
        lang="fr",
        casual=True,
    ),
    pii("fr_parcel", "Merci d'envoyer le colis à :\n{name}\n{address}", lang="fr"),
    pii("fr_secu", "Mon {id_name} est le {national_id}, je suis né le {dob}.", lang="fr"),
    pii("fr_card", "Vous pouvez débiter ma carte {card} (titulaire : {name}).", lang="fr"),
    # Spanish
    pii("es_support", "Hola, soy {name}. Mi {id_name} es {national_id} y mi teléfono {phone}.", lang="es", casual=True),
    pii("es_card", "Quiero pagar con la tarjeta {card}, a nombre de {name}.", lang="es"),
    pii("es_address", "Mi dirección es {address_line}, ¿pueden enviar el pedido allí?", lang="es", casual=True),
    pii("es_birth_mail", "Fecha de nacimiento: {dob}\nCorreo: {email}\nUsuario: {username}", lang="es"),
    # Italian
    pii(
        "it_form",
        "Nome: {first}\nCognome: {last}\n{id_name}: {national_id}\nData di nascita: {dob}\nIndirizzo: {address_line}",
        lang="it",
    ),
    pii("it_callback", "Buongiorno, sono {name}, il mio numero è {phone}. Potete richiamarmi?", lang="it", casual=True),
    pii("it_refund", "Per il rimborso: IBAN {iban} intestato a {name}.", lang="it"),
    pii(
        "it_email_change", "ciao, ho cambiato email, ora è {email}. il mio utente è {username}", lang="it", casual=True
    ),
    # Dutch
    pii(
        "nl_support",
        "Hoi, ik ben {name}. Mijn e-mailadres is {email} en mijn telefoonnummer {phone}.",
        lang="nl",
        casual=True,
    ),
    pii("nl_bsn", "Mijn {id_name} is {national_id} en ik woon op {address_line}.", lang="nl"),
    pii(
        "nl_login",
        "ik kan niet inloggen met gebruikersnaam {username}, wachtwoord {password} werkt niet meer",
        lang="nl",
        casual=True,
    ),
    pii("nl_iban", "Graag terugstorten op {iban} t.n.v. {name}.", lang="nl"),
    # Japanese
    pii("ja_intro", "はじめまして、{name}と申します。電話番号は{phone}、メールは{email}です。", lang="ja"),
    pii("ja_delivery", "お届け先:\n{address}\n{name} 様", lang="ja"),
    pii("ja_mynumber", "{id_name}は{national_id}です。生年月日は{dob}です。", lang="ja"),
    pii("ja_card", "カード番号は{card}、名義は{name}です。", lang="ja"),
    pii("ja_account", "ユーザー名: {username}\nパスワード: {password}\n登録メール: {email}", lang="ja"),
)
