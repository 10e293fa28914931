#!/usr/bin/python3
"""Signs and verifies DKIM test messages with Debian's python3-dkim (dkimpy): the
independent implementation tests/dkim_verify.rs compares postwarden's verdicts with.
Keys are looked up in the request's records, not in DNS.

usage: dkimcompare.py < request.json > answer.json

request: {"records": {"SELECTOR._domainkey.DOMAIN": "v=DKIM1; ...", ...},
          "sign": [JOB, ...], "verify": [BASE64 MESSAGE, ...]}
JOB:     {"message": BASE64, "domain": D, "selector": S, "algorithm": "rsa-sha256" |
          "ed25519-sha256", "key": PKCS#1 PEM (RSA) or base64 seed (Ed25519),
          "c": "relaxed/simple", optional "identity": I, "length": true (l= the whole
          canonicalized body, as dkim.sign(length=True) does) or a number, "t": T, "x": X}
answer:  {"signed": [BASE64 MESSAGE with the DKIM-Signature prepended, ...],
          "verified": [true | false, ...]}

Signing follows DKIM.sign() of dkimpy 1.1 field for field, with x=, a chosen t= and an
explicit l= added (dkim.sign offers none of them); the signature itself is dkimpy's own
gen_header(). Verification is dkim.verify() (the first signature), unchanged.
"""
import base64
import json
import sys
import time

import dkim
import dkim.crypto
import nacl.encoding
import nacl.signing

SIGNED = [b"from", b"to", b"subject", b"date", b"message-id"]

request = json.load(sys.stdin)
records = {k.lower().rstrip("."): v for k, v in request.get("records", {}).items()}


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    record = records.get(name.lower().rstrip("."))
    return record.encode() if record is not None else None


def sign(job):
    msg = base64.b64decode(job["message"])
    alg = job["algorithm"].encode()
    d = dkim.DKIM(msg, signature_algorithm=alg)
    if alg.startswith(b"rsa"):
        pk = dkim.crypto.parse_pem_private_key(job["key"].encode())
    else:
        pk = nacl.signing.SigningKey(job["key"].encode(), encoder=nacl.encoding.Base64Encoder)
    canon = dkim.CanonicalizationPolicy.from_c_value(job["c"].encode())
    body = canon.canonicalize_body(d.body)
    length = job.get("length")
    if length is True:
        length = len(body)
    if length is not None:
        body = body[:length]
    d.hasher = dkim.HASH_ALGORITHMS[alg]
    bodyhash = base64.b64encode(d.hasher(body).digest())
    domain = job["domain"].encode()
    fields = [(b"v", b"1"), (b"a", alg), (b"c", canon.to_c_value()), (b"d", domain)]
    fields.append((b"i", job.get("identity", "@" + job["domain"]).encode()))
    if length is not None:
        fields.append((b"l", str(length).encode()))
    fields += [
        (b"q", b"dns/txt"),
        (b"s", job["selector"].encode()),
        (b"t", str(job.get("t", int(time.time()))).encode()),
    ]
    if "x" in job:
        fields.append((b"x", str(job["x"]).encode()))
    fields += [(b"h", b" : ".join(SIGNED)), (b"bh", bodyhash), (b"b", b"0" * 60)]
    header = d.gen_header(fields, SIGNED, canon, b"DKIM-Signature", pk)
    return base64.b64encode(b"DKIM-Signature: " + header + msg).decode()


def verify(b64):
    return bool(dkim.verify(base64.b64decode(b64), dnsfunc=dnsfunc))


json.dump(
    {
        "signed": [sign(job) for job in request.get("sign", [])],
        "verified": [verify(m) for m in request.get("verify", [])],
    },
    sys.stdout,
)
