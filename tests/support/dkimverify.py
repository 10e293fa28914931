#!/usr/bin/python3
"""Independent DKIM verification of a message with Debian's python3-dkim (dkimpy),
looking the keys up on a given DNS server (the tests' loopback server).

usage: dkimverify.py PORT [--arc] < message
Prints one line per signature: "<index> <d=> <s=> pass|fail"; exits 0 only if there is
at least one signature and every one verifies. With --arc, verifies the ARC chain
instead (RFC 8617) and prints "<cv> <comment>"; exits 0 only if it passes.
"""
import sys

import dkim
import dns.resolver

port = int(sys.argv[1])
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = port
resolver.lifetime = 5


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    try:
        answer = resolver.resolve(name.rstrip("."), "TXT")
    except Exception:
        return None
    for rdata in answer:
        return b"".join(rdata.strings)
    return None


msg = sys.stdin.buffer.read()
if b"\r\n" not in msg:
    msg = msg.replace(b"\n", b"\r\n")
if "--arc" in sys.argv[2:]:
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    print(cv.decode(), comment)
    sys.exit(0 if cv == b"pass" else 1)
d = dkim.DKIM(msg)
sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
if not sigs:
    print("no DKIM-Signature header")
    sys.exit(1)
ok = True
for idx, sig in enumerate(sigs):
    tags = dict(
        (t.split(b"=", 1)[0].strip(), t.split(b"=", 1)[1].strip())
        for t in sig.replace(b"\r\n", b"").split(b";")
        if b"=" in t
    )
    good = d.verify(idx=idx, dnsfunc=dnsfunc)
    ok = ok and good
    print(idx, tags.get(b"d", b"?").decode(), tags.get(b"s", b"?").decode(), "pass" if good else "fail")
sys.exit(0 if ok else 1)
