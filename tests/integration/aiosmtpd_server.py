#!/usr/bin/python3
"""An SMTP server written by others, for fabgate's tests: aiosmtpd (Debian's
python3-aiosmtpd, installed by .ci/run) in one of three modes:

  plain     plain SMTP
  starttls  STARTTLS offered and required before MAIL
  tls       implicit TLS from the first byte (port 465 style)

With --user/--password it offers AUTH PLAIN and LOGIN (only over TLS) and answers a wrong
password with 535. Started by tests/integration/common/aiosmtpd.rs.

stdout, one line each: first the port (the ready signal: the socket is bound to port 0
before the server starts, so there is no port race), then one JSON object per accepted
message: mail_from, rcpt_tos, data, tls, tls_version, user. The server exits when its
stdin closes, so it never outlives the test that started it.
"""

import argparse
import asyncio
import json
import logging
import os
import socket
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult


class Recorder:
    async def handle_DATA(self, server, session, envelope):
        # The transport is the TLS one after STARTTLS and from the start with implicit TLS
        # (aiosmtpd's session.ssl is only set for STARTTLS).
        tls = server.transport.get_extra_info("ssl_object")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "tls": tls is not None,
            "tls_version": tls.version() if tls else None,
            "user": session.auth_data if session.authenticated else None,
        }
        print(json.dumps(record), flush=True)
        return "250 2.0.0 OK queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    # aiosmtpd logs a deprecation warning at every AUTH; keep the test output readable.
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    context = None
    if a.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (a.user, a.password)
        return AuthResult(success=ok, handled=False, auth_data=a.user if ok else None)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return SMTP(
            Recorder(),
            hostname="localhost",  # not socket.getfqdn(): slow without DNS
            tls_context=context if a.mode == "starttls" else None,
            require_starttls=a.mode == "starttls",
            authenticator=authenticator if a.user else None,
            # aiosmtpd only knows TLS that came from STARTTLS: with implicit TLS the
            # whole session is encrypted already.
            auth_require_tls=a.mode != "tls",
            loop=loop,
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = loop.run_until_complete(
        loop.create_server(factory, sock=sock, ssl=context if a.mode == "tls" else None)
    )
    print(sock.getsockname()[1], flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
