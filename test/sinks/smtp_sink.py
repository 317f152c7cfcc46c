#!/usr/bin/python3
"""SMTP sink for aura's tests (python3-aiosmtpd): records every message as one
JSON line in --log (envelope, decoded subject, MIME part types and texts).
--auth USER:PASSWORD requires that login (AUTH PLAIN/LOGIN; allowed without
TLS on loopback for the plain test, only after TLS with --tls).
--tls CERT:KEY offers STARTTLS and requires it before anything else; with
--implicit the whole connection is TLS from the first byte (SMTPS).  Each
record says which TLS version carried the message (null: none)."""
import argparse
import email
import email.header
import email.policy
import json
import os
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def tls_version(server):
    """TLS version of the connection a message came over, None for plain text"""
    transport = getattr(server, 'transport', None)
    obj = transport.get_extra_info('ssl_object') if transport is not None else None
    return obj.version() if obj is not None else None


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
               'parts': parts, 'login': bool(getattr(session, 'authenticated', False)),
               'tls': tls_version(server)}
        with open(self.path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        return '250 Message accepted for delivery'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--log', required=True)
    ap.add_argument('--auth')
    ap.add_argument('--tls')
    ap.add_argument('--implicit', action='store_true')
    args = ap.parse_args()
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(':', 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)
        # implicit TLS: aiosmtpd only knows STARTTLS as TLS, the connection is TLS anyway
        kwargs = dict(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(args.tls) and not args.implicit)
    if args.tls:
        cert, key = args.tls.split(':', 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if args.implicit:
            kwargs['ssl_context'] = ctx
        else:
            kwargs.update(tls_context=ctx, require_starttls=True)
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
