"""Technical PII templates: logs, config files, env vars, HTTP requests and code with real-looking secrets."""

from __future__ import annotations

from probeguard.training.synth.render import Template, pii

TECH_TEMPLATES: tuple[Template, ...] = (
    pii(
        "env_aws", "AWS_ACCESS_KEY_ID={aws_key_id}\nAWS_SECRET_ACCESS_KEY={aws_secret}\nAWS_DEFAULT_REGION=eu-central-1"
    ),
    pii("curl_bearer", 'curl -H "Authorization: Bearer {bearer}" https://api.{domain}/v1/users?limit={count}'),
    pii("nginx_access_log", '{ip} - - [{log_ts}] "POST /login HTTP/1.1" 401 532 "-" "Mozilla/5.0 (X11; Linux x86_64)"'),
    pii("app_log_login", "{iso_ts} WARN auth: login failed for user={username} ip={ip} reason=bad_password"),
    pii("database_url", "DATABASE_URL=postgres://{username}:{password}@db.{domain}:5432/prod"),
    pii("smtp_yaml", "smtp:\n  host: smtp.{domain}\n  port: 587\n  user: {work_email}\n  password: {password}"),
    pii("python_client", 'client = Client(api_key="{api_key}")\nresp = client.messages.send(to="{email}", body="hi")'),
    pii("ci_env_tokens", "env:\n  GITHUB_TOKEN: {gh_token}\n  SLACK_BOT_TOKEN: {slack_token}"),
    pii(
        "traceback_card",
        'Traceback (most recent call last):\n  File "billing.py", line {count}, in charge\n'
        "ValueError: card {card} declined for customer {email}",
    ),
    pii(
        "json_user_record",
        '{"id": {count}, "username": "{username}", "email": "{email}", "last_login_ip": "{ip}", "dob": "{dob}"}',
    ),
    pii("sshd_log", "sshd[{pid}]: Failed password for {username} from {ip} port {port} ssh2"),
    pii(
        "docker_run_secrets", "docker run -e STRIPE_SECRET_KEY={api_key} -e WEBHOOK_SECRET={secret} shop-api:{version}"
    ),
    pii("netrc", "machine api.{domain}\n  login {username}\n  password {password}"),
    pii(
        "k8s_secret",
        'apiVersion: v1\nkind: Secret\nmetadata:\n  name: backend\nstringData:\n  api-token: "{api_key}"\n'
        '  db-password: "{password}"',
    ),
    pii("allowlist_comments", "allowlist:\n  - {ip}    # {name} home office\n  - {ip2}    # {name2} VPN"),
    pii("access_log_ipv6", "[{iso_ts}] client={ipv6} user={username} action=download file=report_q3.pdf"),
    pii("chat_paste_env", "why isn't this working??\n\nOPENAI_API_KEY={api_key}\nDEBUG=true", casual=True),
    pii("gitconfig", "[user]\n\tname = {name}\n\temail = {email}\n[github]\n\tuser = {username}"),
    pii(
        "raw_http_request",
        "GET /api/v2/me HTTP/1.1\nHost: api.{domain}\nAuthorization: Bearer {bearer}\nX-Forwarded-For: {ip}",
    ),
    pii("dotenv_password", "# local dev\nDB_USER={username}\nDB_PASSWORD={password}\nSECRET_KEY={secret}"),
    pii(
        "audit_log_json",
        '{"ts": "{iso_ts}", "event": "password_reset", "email": "{email}", "phone": "{phone}", "ip": "{ip}"}',
    ),
    pii("crm_export_line", "{uuid};{name};{email};{phone};{address_line};{dob}"),
    pii(
        "support_ticket_dump",
        "Ticket {ticket}\nReporter: {name} <{email}>\nIP: {ip}\nDescription: cannot reset password, tried "
        '"{password}" and "{password2}"',
    ),
)
