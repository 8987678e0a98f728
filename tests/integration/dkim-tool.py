#!/usr/bin/python3
"""DKIM side of the integration-test harness (the DKIM section of lib.sh calls it).

Independent signers and verifiers for the messages milter-warden signs and verifies:
python3-dkim (its own canonicalization and crypto, python3-nacl for Ed25519) and OpenDKIM
(Debian's opendkim in its test mode, "opendkim -t"), both reading public keys from a
records file instead of DNS, so a verdict never depends on the test's DNS server.

Records file: one "SELECTOR._domainkey.DOMAIN TXT-DATA" line per key, the format of
OpenDKIM's TestPublicKeys; python3-dkim reads the same file.

Subcommands:
  unsink SINKFILE OUT        the message exactly as Postfix relayed it, from a file smtp-sink
                             wrote (-d): smtp-sink's own X-* lines and Received field on top
                             removed, the empty line it appends at the end removed, CRLF line
                             endings (what the signer saw on the wire)
  verify-py MSG RECORDS      python3-dkim verdict for every DKIM-Signature, top one first
  verify-od MSG RECORDS DIR  OpenDKIM's verdict for every signature (config and scratch in DIR)
                             Both print one line per signature:
                               RESULT d=DOMAIN s=SELECTOR a=ALGORITHM [reason...]
                             RESULT is pass, fail, permerror or temperror; nothing when the
                             message has no signature.
  sigs MSG                   the tags of every DKIM-Signature, top one first, one line each:
                               pos=N a=... d=... s=... c=... h=... [l=...] [x=...] [t=...]
                             pos is the field's index in the header section (0 = first field)
  fields MSG                 the names of the header fields, in order, one a line
  field MSG N                header field number N (0 = first), unfolded, on one line
  ar MSG                     every Authentication-Results field, one line per result clause:
                               AUTHSERV-ID<TAB>method=result prop=value ...
                             (comments and reason= dropped, properties in their order); a field
                             with no result clause ("none") gives "AUTHSERV-ID<TAB>none"
  od-sign MSG OUT DIR DOMAIN SELECTOR KEYFILE [ALG]
                             sign MSG with OpenDKIM's own signer (opendkim -t in sign mode,
                             relaxed/relaxed, ALG rsa-sha256 or ed25519-sha256); OUT is the
                             message with OpenDKIM's DKIM-Signature field on top (LF endings)
  py-sign MSG OUT DOMAIN SELECTOR KEYFILE [l]
                             sign MSG with python3-dkim (RSA key, relaxed/relaxed), for the
                             variants OpenDKIM will not make; "l" adds an l= body length tag
"""

import os
import re
import subprocess
import sys

import dkim
from dkim.util import parse_tag_value


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def lf(data):
    return data.replace(b"\r\n", b"\n")


def crlf(data):
    return lf(data).replace(b"\n", b"\r\n")


def header_fields(msg):
    """(name, raw field including continuation lines) for every header field."""
    lines = lf(msg).split(b"\n")
    fields = []
    for line in lines:
        if line == b"":
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
        else:
            fields.append((line.split(b":", 1)[0], [line]))
    return [(n, b"\n".join(ls)) for n, ls in fields]


def unsink(src, out):
    data = lf(read(src))
    lines = data.split(b"\n")
    # smtp-sink puts X-Client-Addr, X-Client-Proto, X-Helo-Args, X-Mail-Args and one
    # X-Rcpt-Args per recipient on top, then its own Received field (two continuation lines,
    # "by smtp-sink (smtp-sink) with ...").
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-") and b":" in lines[i]:
        i += 1
    if i >= len(lines) or not lines[i].startswith(b"Received: "):
        sys.exit("unsink: %s: no smtp-sink Received field after its X- lines" % src)
    j = i + 1
    while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
        j += 1
    if b"by smtp-sink (smtp-sink)" not in b"\n".join(lines[i:j]):
        sys.exit("unsink: %s: the first Received field is not smtp-sink's" % src)
    rest = b"\n".join(lines[j:])
    # smtp-sink writes every line it received plus one newline of its own at the end.
    if not rest.endswith(b"\n\n"):
        sys.exit("unsink: %s: does not end with smtp-sink's extra empty line" % src)
    write(out, crlf(rest[:-1]))


def load_records(path):
    recs = {}
    for line in read(path).decode().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, txt = line.split(None, 1)
        recs[name.lower().rstrip(".")] = txt.encode()
    return recs


def sig_tags(value):
    try:
        return parse_tag_value(value)
    except Exception:  # noqa: BLE001 -- a malformed signature is reported, not fatal
        return {}


def sig_ident(tags):
    def g(k):
        return tags.get(k, b"?").decode("ascii", "replace")

    return "d=%s s=%s a=%s" % (g(b"d"), g(b"s"), g(b"a"))


def signatures(msg):
    """[(position, raw value)] of every DKIM-Signature field, top one first."""
    out = []
    for pos, (name, raw) in enumerate(header_fields(msg)):
        if name.lower() == b"dkim-signature":
            out.append((pos, raw.split(b":", 1)[1]))
    return out


def verify_py(msgpath, recpath):
    recs = load_records(recpath)
    msg = crlf(read(msgpath))

    def dnsfunc(name, timeout=5):
        return recs.get(name.decode().lower().rstrip("."))

    for idx, (_, value) in enumerate(signatures(msg)):
        tags = sig_tags(value)
        d = dkim.DKIM(msg, minkey=1024)
        reason = ""
        try:
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            result = "pass" if ok else "fail"
        except dkim.KeyFormatError as e:
            result, reason = "permerror", str(e)
        except dkim.DKIMException as e:
            result, reason = "fail", str(e)
        if result == "fail" and not reason:
            reason = "signature did not verify"
        print(("%s %s %s" % (result, sig_ident(tags), reason)).rstrip())


INSHEADER = re.compile(r"^### INSHEADER: idx=(\d+) hname='([^']*)' hvalue='(.*?)'$", re.S | re.M)


def run_opendkim(conf, msgpath):
    p = subprocess.run(
        ["/usr/sbin/opendkim", "-x", conf, "-t", msgpath, "-vv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        sys.exit(
            "opendkim -t %s: exit status %d\n%s%s"
            % (msgpath, p.returncode, out, p.stderr.decode("utf-8", "replace"))
        )
    return out, p.stderr.decode("utf-8", "replace")


def split_clauses(value):
    """Split an Authentication-Results value at ";" outside quotes and comments; comments
    are dropped."""
    parts, cur, depth, quoted, esc = [], [], 0, False, False
    for ch in value:
        if esc:
            if depth == 0:
                cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
            if depth == 0:
                cur.append(ch)
        elif quoted:
            cur.append(ch)
            if ch == '"':
                quoted = False
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
        elif depth > 0:
            pass
        elif ch == '"':
            quoted = True
            cur.append(ch)
        elif ch == ";":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [" ".join(p.split()) for p in parts]


def clause_props(clause):
    """"dkim=pass reason="x y" header.d=a" -> ("dkim=pass", [("header.d", "a")])."""
    toks = re.findall(r'[^\s=]+=(?:"(?:[^"\\]|\\.)*"|\S+)|\S+', clause)
    if not toks:
        return None, []
    props = []
    for t in toks[1:]:
        if "=" in t:
            k, v = t.split("=", 1)
            props.append((k, v))
    return toks[0], props


def verify_od(msgpath, recpath, workdir):
    conf = os.path.join(workdir, "opendkim-verify.conf")
    with open(conf, "w") as f:
        f.write("Mode v\nSyslog no\nTestPublicKeys %s\nMinimumKeyBits 1024\n" % recpath)
    tmp = os.path.join(workdir, "opendkim-verify.eml")
    write(tmp, lf(read(msgpath)))
    out, err = run_opendkim(conf, tmp)
    sigs = signatures(read(msgpath))
    if not sigs:
        return
    ar = [m.group(3) for m in INSHEADER.finditer(out) if m.group(2).lower() == "authentication-results"]
    if not ar:
        sys.exit("opendkim -t gave no Authentication-Results for %s:\n%s%s" % (msgpath, out, err))
    results = []
    for clause in split_clauses(ar[0])[1:]:
        head, props = clause_props(clause)
        if head is None or not head.startswith("dkim="):
            continue
        p = dict(props)
        results.append((head[5:], p))
    # OpenDKIM reports its signatures in header order, like the list above; match them by
    # d=, s=, a= and the first characters of b= all the same.
    for _, value in sigs:
        tags = sig_tags(value)
        b = re.sub(rb"\s", b"", tags.get(b"b", b"")).decode("ascii", "replace")
        match = None
        for k, (res, p) in enumerate(results):
            if (
                p.get("header.d") == tags.get(b"d", b"").decode()
                and p.get("header.s") == tags.get(b"s", b"").decode()
                and p.get("header.a") == tags.get(b"a", b"").decode()
                and b.startswith(p.get("header.b", ""))
            ):
                match = k
                break
        if match is None:
            print("missing %s (opendkim reported no result for it)" % sig_ident(tags))
            continue
        res, p = results.pop(match)
        reason = p.get("reason", "").strip('"')
        print(("%s %s %s" % (res, sig_ident(tags), reason)).rstrip())


def show_sigs(msgpath):
    for pos, value in signatures(read(msgpath)):
        tags = sig_tags(value)
        parts = ["pos=%d" % pos]
        for k in (b"a", b"d", b"s", b"c", b"h", b"l", b"x", b"t", b"i"):
            if k in tags:
                v = re.sub(rb"\s", b"", tags[k]).decode("utf-8", "replace")
                parts.append("%s=%s" % (k.decode(), v))
        print(" ".join(parts))


def show_fields(msgpath):
    for name, _ in header_fields(read(msgpath)):
        print(name.decode("utf-8", "replace"))


def show_field(msgpath, n):
    fields = header_fields(read(msgpath))
    n = int(n)
    if n < len(fields):
        print(" ".join(fields[n][1].decode("utf-8", "replace").split()))


def show_ar(msgpath):
    for name, raw in header_fields(read(msgpath)):
        if name.lower() != b"authentication-results":
            continue
        value = raw.split(b":", 1)[1].decode("utf-8", "replace")
        clauses = split_clauses(value)
        authserv = clauses[0].split()[0] if clauses[0].split() else ""
        shown = 0
        for clause in clauses[1:]:
            head, props = clause_props(clause)
            if head is None:
                continue
            if head == "none":
                break
            kept = " ".join("%s=%s" % kv for kv in props if kv[0] != "reason")
            print(("%s\t%s %s" % (authserv, head, kept)).rstrip())
            shown += 1
        if shown == 0:
            print("%s\tnone" % authserv)


def od_sign(msgpath, outpath, workdir, domain, selector, keyfile, alg="rsa-sha256"):
    conf = os.path.join(workdir, "opendkim-sign-%s-%s.conf" % (domain, selector))
    with open(conf, "w") as f:
        f.write(
            "Mode s\nSyslog no\nDomain %s\nSelector %s\nKeyFile %s\n"
            "Canonicalization relaxed/relaxed\nSignatureAlgorithm %s\n"
            "RequireSafeKeys no\n" % (domain, selector, keyfile, alg)
        )
    tmp = os.path.join(workdir, "opendkim-sign.eml")
    msg = lf(read(msgpath))
    write(tmp, msg)
    out, err = run_opendkim(conf, tmp)
    added = [
        (int(m.group(1)), m.group(2), m.group(3))
        for m in INSHEADER.finditer(out)
        if m.group(2).lower() == "dkim-signature"
    ]
    if len(added) != 1:
        sys.exit("opendkim -t did not sign %s:\n%s%s" % (msgpath, out, err))
    _, name, value = added[0]
    write(outpath, ("%s: %s\n" % (name, value)).encode() + msg)


def py_sign(msgpath, outpath, domain, selector, keyfile, length=""):
    # python3-dkim reads RSA keys in the traditional RSAPrivateKey PEM form only.
    pem = subprocess.run(
        ["openssl", "pkey", "-in", keyfile, "-traditional"],
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    msg = crlf(read(msgpath))
    sig = dkim.sign(
        msg,
        selector.encode(),
        domain.encode(),
        pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        length=(length == "l"),
    )
    write(outpath, lf(sig + msg))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    table = {
        "unsink": (unsink, 2),
        "verify-py": (verify_py, 2),
        "verify-od": (verify_od, 3),
        "sigs": (show_sigs, 1),
        "fields": (show_fields, 1),
        "field": (show_field, 2),
        "ar": (show_ar, 1),
        "od-sign": (od_sign, 6),
        "py-sign": (py_sign, 5),
    }
    if cmd not in table:
        sys.exit("unknown subcommand %r\n%s" % (cmd, __doc__))
    fn, n = table[cmd]
    if len(args) < n:
        sys.exit("%s: %d arguments expected\n%s" % (cmd, n, __doc__))
    fn(*args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
