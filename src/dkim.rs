//! DKIM keys: generation, DNS TXT text, signing (arrives with the SPF/DKIM/DMARC work).
