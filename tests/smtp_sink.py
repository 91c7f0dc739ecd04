#!/usr/bin/env python3
"""A real SMTP server on loopback for the mail tests (aiosmtpd).

    python3 tests/smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT and stores every message it accepts as one JSON file in DIR:
the envelope (mail_from, rcpt_tos) and the parsed message (from, to, subject, the decoded
plain-text body). Recipients at `rejected.example` are refused with 550 (a permanent error). Prints `ready` once listening; runs until SIGTERM/SIGINT.
Exits with an error when aiosmtpd is not installed: the tests then fail, never skip.
"""

import email
import email.policy
import json
import os
import signal
import sys
import threading

try:
    from aiosmtpd.controller import Controller
except ImportError:
    sys.stderr.write(
        "aiosmtpd is not installed: pip install aiosmtpd "
        "(scripts/test.sh installs it)\n"
    )
    sys.exit(3)


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A recipient the server refuses for good, as for an unknown user.
        if address.endswith("@rejected.example"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "auto_submitted": str(message["Auto-Submitted"]),
            "body": body.get_content() if body is not None else "",
        }
        with self.lock:
            # Names sort in arrival order; a temporary name first, so a reader never sees half.
            count = len([n for n in os.listdir(self.directory) if n.endswith(".json")])
            name = "%08d-%d-%d.json" % (count, os.getpid(), threading.get_ident())
            temporary = os.path.join(self.directory, "." + name)
            with open(temporary, "w") as out:
                json.dump(record, out)
            os.rename(temporary, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Store(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
