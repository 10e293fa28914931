//! The Dovecot authentication protocol, server side (arrives with the auth-socket work).
