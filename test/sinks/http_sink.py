#!/usr/bin/python3
"""HTTP sink for aura's tests, demo and benchmark (Python standard library only).

Records every request as one JSON line in --log: time, path, headers, body and
what the sink checked -- the Standard Webhooks signature (with the secrets it
was told), the Slack Block Kit shape, the Twilio form shape.  Behaviour per
path is set on command:

  POST /_control  {"path": "/hook", "mode": "ok|500|410|hang|slow|big|redirect"}
  POST /_control  {"secrets": ["whsec_..."]}      secrets to verify with
  GET  /_count                                      number of recorded requests

--tls CERT:KEY serves HTTPS.  --fast: a minimal asyncio server for the benchmark that only answers 200 and
records (arrival time, webhook-id) pairs.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

modes = {}
secrets = []
lock = threading.Lock()
count = 0
logf = None


def verify(headers, body):
    """True/False for a Standard Webhooks signature, None when unsigned."""
    sig = headers.get('webhook-signature')
    if sig is None:
        return None
    msg_id = headers.get('webhook-id', '')
    ts = headers.get('webhook-timestamp', '')
    try:
        if abs(time.time() - int(ts)) > 300:
            return False
    except ValueError:
        return False
    content = f'{msg_id}.{ts}.'.encode() + body
    for s in secrets:
        key = base64.b64decode(s[len('whsec_'):])
        expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for part in sig.split(' '):
            if part.startswith('v1,') and hmac.compare_digest(part[3:], expected):
                return True
    return False


def shape(path, headers, body):
    """Which known payload shape the request has, and whether it is right."""
    ctype = headers.get('content-type', '')
    if ctype.startswith('application/x-www-form-urlencoded'):
        form = urllib.parse.parse_qs(body.decode(errors='replace'))
        ok = all(k in form for k in ('To', 'From', 'Body')) and \
            headers.get('authorization', '').startswith('Basic ') and path.endswith('/Messages.json')
        return 'twilio', ok, {k: v[0] for k, v in form.items()}
    try:
        doc = json.loads(body)
    except ValueError:
        return 'unknown', False, None
    if isinstance(doc, dict) and 'blocks' in doc:
        b = doc['blocks']
        ok = isinstance(b, list) and len(b) >= 2 and b[0].get('type') == 'header' \
            and b[0]['text']['type'] == 'plain_text' and isinstance(doc.get('text'), str)
        return 'slack', ok, doc
    if isinstance(doc, dict) and {'type', 'timestamp', 'data'} <= set(doc):
        return 'webhook', True, doc
    return 'json', True, doc


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def reply(self, code, body=b'ok', extra=None):
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == '/_count':
            self.reply(200, str(count).encode())
        else:
            self.reply(200)

    def do_POST(self):
        global count, secrets
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        if self.path == '/_control':
            cmd = json.loads(body)
            if 'secrets' in cmd:
                secrets = list(cmd['secrets'])
            if 'path' in cmd:
                modes[cmd['path']] = cmd.get('mode', 'ok')
            self.reply(200)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        mode = modes.get(self.path.split('?')[0], modes.get('*', 'ok'))
        kind, ok, doc = shape(self.path, headers, body)
        rec = {'t': time.time(), 'path': self.path, 'mode': mode, 'headers': headers,
               'body': body.decode(errors='replace'), 'sig_ok': verify(headers, body),
               'shape': kind, 'shape_ok': ok, 'doc': doc}
        with lock:
            count += 1
            logf.write(json.dumps(rec) + '\n')
            logf.flush()
        if mode == 'hang':
            time.sleep(60)
            self.reply(200)
        elif mode == 'slow':
            time.sleep(1.5)
            self.reply(200)
        elif mode == 'big':
            self.reply(200, b'x' * (3 * 1024 * 1024))
        elif mode == 'redirect':
            self.reply(302, b'', {'Location': '/elsewhere'})
        elif mode.isdigit():
            self.reply(int(mode), b'no_service' if mode == '410' else b'error')
        else:
            self.reply(200)


async def fast_server(port, ready):
    """Benchmark mode: answer 200 to every request, record arrival times."""
    async def handle(reader, writer):
        global count
        try:
            while True:
                head = await reader.readuntil(b'\r\n\r\n')
                length = 0
                msg_id = ''
                for line in head.split(b'\r\n'):
                    low = line.lower()
                    if low.startswith(b'content-length:'):
                        length = int(line.split(b':', 1)[1])
                    elif low.startswith(b'webhook-id:'):
                        msg_id = line.split(b':', 1)[1].strip().decode()
                if length:
                    await reader.readexactly(length)
                count += 1
                logf.write(f'{time.time():.6f} {msg_id}\n')
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, '127.0.0.1', port, backlog=1024)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        while True:
            await asyncio.sleep(0.5)
            logf.flush()


def main():
    global logf, secrets
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--log', required=True)
    ap.add_argument('--fast', action='store_true')
    ap.add_argument('--tls', help='CERT_FILE:KEY_FILE: serve HTTPS')
    ap.add_argument('--secret', action='append', default=[],
                    help='whsec_ secret to verify with from the first request on (repeatable)')
    args = ap.parse_args()
    logf = open(args.log, 'a')
    secrets = list(args.secret)

    def ready(port):
        if args.port_file:
            with open(args.port_file + '.tmp', 'w') as f:
                f.write(str(port))
            import os
            os.rename(args.port_file + '.tmp', args.port_file)
        print(port, flush=True)

    if args.fast:
        asyncio.run(fast_server(args.port, ready))
        return
    httpd = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    httpd.daemon_threads = True
    if args.tls:
        import ssl
        cert, key = args.tls.split(':', 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    ready(httpd.server_address[1])
    httpd.serve_forever()


if __name__ == '__main__':
    main()
