//! SPF, DKIM and DMARC verdicts via mail-auth; Authentication-Results (arrives with the SPF/DKIM/DMARC work).
