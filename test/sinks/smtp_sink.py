#!/usr/bin/python3
"""SMTP sink for aura's tests (python3-aiosmtpd): records every message as one
JSON line in --log (envelope, decoded subject, MIME part types and texts).
--auth USER:PASSWORD requires that login (AUTH PLAIN/LOGIN, allowed without
TLS on loopback for the test)."""
import argparse
import email
import email.header
import email.policy
import json
import os
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Recorder:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.get_content_maintype() == 'multipart':
                continue
            parts.append({'type': part.get_content_type(), 'text': part.get_content()})
        rec = {'t': time.time(), 'mail_from': envelope.mail_from, 'rcpt_tos': envelope.rcpt_tos,
               'subject': str(msg['subject']), 'from': str(msg['from']), 'to': str(msg['to']),
               'message_id': str(msg['message-id']), 'content_type': msg.get_content_type(),
               'parts': parts, 'login': getattr(session, 'login_data', None) and True}
        with open(self.path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        return '250 Message accepted for delivery'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--log', required=True)
    ap.add_argument('--auth')
    args = ap.parse_args()
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(':', 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)
        kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    ctl = Controller(Recorder(args.log), hostname='127.0.0.1', port=args.port, **kwargs)
    ctl.start()
    print(args.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        ctl.stop()


if __name__ == '__main__':
    main()
