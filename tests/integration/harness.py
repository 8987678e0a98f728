#!/usr/bin/python3
"""Python side of the integration-test harness (lib.sh calls it).

Subcommands:
  free-ports N            print N distinct free TCP ports on 127.0.0.1, one a line
  is-listening PORT       exit 0 if something listens on 127.0.0.1:PORT (no connection
                          is made, so a listening smtpd does not start a milter session)
  unix-listening PATH     exit 0 if a unix socket bound to PATH is listening (same idea)
  chat PORT HELO          one SMTP session driven from stdin, one command a line:
                            MAIL addr | RCPT addr | DATA file | RSET | NOOP | QUIT
                          After connecting and EHLO it prints the EHLO reply; then one reply
                          line per command: "CODE TEXT" (a multi-line reply is joined with
                          " / "). A lost connection prints "421 connection lost: ...".
                          lib.sh runs it as a coprocess, so a session can stay open while the
                          test signals the milter.

Use Debian's /usr/bin/python3: smtplib from the standard library is all it needs.
"""

import smtplib
import socket
import sys


def free_ports(count):
    # Bind them all at once so that the kernel hands out distinct ports.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return 0


def is_listening(port):
    # /proc/net/tcp: local address is hex "0100007F:PORT", state 0A is LISTEN.
    # 0.0.0.0 listeners also serve 127.0.0.1.
    want = "%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, lport = fields[1].split(":")
            if lport == want and fields[3] == "0A" and addr in ("0100007F", "00000000"):
                return 0
    return 1


def unix_listening(path):
    # /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path"; flag 0x10000
    # (__SO_ACCEPTCON) marks a listening socket. Looking here, unlike connecting, does not
    # open a milter session.
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return 0
    return 1


def reply_line(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "%s %s" % (code, " / ".join(text.splitlines()))


def chat(port, helo):
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=90)
    except (OSError, smtplib.SMTPException) as e:
        print("421 connect failed: %s" % e, flush=True)
        return 1
    code, text = s.ehlo()
    print(reply_line(code, text), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.rstrip("\r\n").partition(" ")
        cmd = cmd.upper()
        try:
            if cmd == "MAIL":
                code, text = s.mail(arg)
            elif cmd == "RCPT":
                code, text = s.rcpt(arg)
            elif cmd == "DATA":
                with open(arg, encoding="utf-8") as f:
                    msg = f.read()
                try:
                    code, text = s.data(msg)
                except smtplib.SMTPDataError as e:
                    code, text = e.smtp_code, e.smtp_error
            elif cmd == "RSET":
                code, text = s.rset()
            elif cmd == "NOOP":
                code, text = s.noop()
            elif cmd == "QUIT":
                code, text = s.docmd("QUIT")
                print(reply_line(code, text), flush=True)
                s.close()
                return 0
            else:
                code, text = 500, "harness.py: unknown command %r" % cmd
        except (OSError, smtplib.SMTPException) as e:
            print("421 connection lost: %s" % e, flush=True)
            return 1
        print(reply_line(code, text), flush=True)
    s.close()
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "free-ports":
        return free_ports(int(argv[2]) if len(argv) > 2 else 1)
    if len(argv) == 3 and argv[1] == "is-listening":
        return is_listening(int(argv[2]))
    if len(argv) == 3 and argv[1] == "unix-listening":
        return unix_listening(argv[2])
    if len(argv) == 4 and argv[1] == "chat":
        return chat(int(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
