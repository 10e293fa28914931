//! Numbered schema migrations. `PRAGMA user_version` holds how many have been applied.
//! Append new migrations; never edit one that has shipped.

pub const MIGRATIONS: &[&str] = &[
    // 1: organizations, domains, accounts, credentials, events.
    r#"
    CREATE TABLE organization (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
        sender_check TEXT NOT NULL DEFAULT 'account' CHECK (sender_check IN ('account', 'domain')),
        created      INTEGER NOT NULL
    );
    CREATE TABLE domain (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        organization_id INTEGER NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        created         INTEGER NOT NULL
    );
    CREATE INDEX domain_organization ON domain(organization_id);
    CREATE TABLE account (
        id        INTEGER PRIMARY KEY,
        address   TEXT NOT NULL UNIQUE,
        domain_id INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
        kind      TEXT NOT NULL CHECK (kind IN ('end_user', 'silent_user', 'functional')),
        created   INTEGER NOT NULL
    );
    CREATE INDEX account_domain ON account(domain_id);
    CREATE TABLE credential (
        id              INTEGER PRIMARY KEY,
        organization_id INTEGER NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        label           TEXT NOT NULL,
        username        TEXT NOT NULL UNIQUE,
        hash            TEXT NOT NULL,
        created         INTEGER NOT NULL,
        last_used       INTEGER,
        last_ip         TEXT,
        revoked         INTEGER,
        CHECK (hash LIKE '$argon2id$%')
    );
    -- A label names one live credential of an organization; a revoked one frees its label.
    CREATE UNIQUE INDEX credential_label ON credential(organization_id, label) WHERE revoked IS NULL;
    CREATE TABLE event (
        id          INTEGER PRIMARY KEY,
        time        INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('auth', 'mail', 'admin')),
        outcome     TEXT NOT NULL,
        login       TEXT,
        org         TEXT,
        client_ip   TEXT,
        sender      TEXT,
        header_from TEXT,
        rcpt_count  INTEGER,
        queue_id    TEXT,
        reason      TEXT
    );
    CREATE INDEX event_time ON event(time);
    "#,
    // 2: senders accepted in `domain` mode that are not registered accounts.
    r#"
    CREATE TABLE discovered_sender (
        organization_id INTEGER NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        address         TEXT NOT NULL,
        first_seen      INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        messages        INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (organization_id, address)
    );
    "#,
    // 3: DKIM keys per domain. state: pending (generated, not signing), active (signing),
    // retired (no longer signing; may still be published during the overlap).
    r#"
    CREATE TABLE dkim_key (
        id          INTEGER PRIMARY KEY,
        domain_id   INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
        selector    TEXT NOT NULL,
        algorithm   TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
        private_key BLOB NOT NULL,
        public_key  TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active', 'retired')),
        created     INTEGER NOT NULL,
        activated   INTEGER,
        retired     INTEGER,
        UNIQUE (domain_id, selector)
    );
    "#,
    // 4: DMARC results of inbound messages for aggregate reports (RFC 7489 section 7.2),
    // and the reports sent. reasons, dkim, spf and rua are JSON arrays.
    r#"
    CREATE TABLE dmarc_result (
        id            INTEGER PRIMARY KEY,
        time          INTEGER NOT NULL,
        policy_domain TEXT NOT NULL,
        p             TEXT NOT NULL,
        sp            TEXT NOT NULL,
        pct           INTEGER NOT NULL,
        adkim         TEXT NOT NULL,
        aspf          TEXT NOT NULL,
        fo            TEXT NOT NULL,
        header_from   TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        source_ip     TEXT NOT NULL,
        disposition   TEXT NOT NULL CHECK (disposition IN ('none', 'quarantine', 'reject')),
        dkim_aligned  TEXT NOT NULL CHECK (dkim_aligned IN ('pass', 'fail')),
        spf_aligned   TEXT NOT NULL CHECK (spf_aligned IN ('pass', 'fail')),
        reasons       TEXT NOT NULL,
        dkim          TEXT NOT NULL,
        spf           TEXT NOT NULL,
        rua           TEXT NOT NULL
    );
    CREATE INDEX dmarc_result_time ON dmarc_result(time);
    CREATE TABLE dmarc_report_sent (
        policy_domain TEXT NOT NULL,
        begin         INTEGER NOT NULL,
        end           INTEGER NOT NULL,
        report_id     TEXT NOT NULL,
        recipients    TEXT NOT NULL,
        sent          INTEGER NOT NULL,
        PRIMARY KEY (policy_domain, begin, end)
    );
    "#,
    // 5: how far the daemon's event journal (entries kept while the store was at fault)
    // has been written into the store: the journal's id and its last entry written, set
    // in the transaction that writes the entries, so a replay cut short never writes an
    // entry twice. One row: the journal being replayed.
    r#"
    CREATE TABLE journal_replay (
        journal TEXT PRIMARY KEY,
        upto    INTEGER NOT NULL
    );
    "#,
    // 6: login throttling, shared by every front end on the store. throttle: attempts per
    // client address (kind 'address': IPv4, or an IPv6 /64) and per username, until
    // `expires` (Unix seconds; every attempt moves it on). throttle_known: addresses a
    // username logged in from, which its per-username budget does not hold back. Expired
    // rows are pruned by the daemon; the hot path only uses the primary keys.
    r#"
    CREATE TABLE throttle (
        kind     TEXT NOT NULL CHECK (kind IN ('address', 'username')),
        key      TEXT NOT NULL,
        failures INTEGER NOT NULL CHECK (failures >= 0),
        expires  INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE TABLE throttle_known (
        username TEXT NOT NULL,
        address  TEXT NOT NULL,
        expires  INTEGER NOT NULL,
        PRIMARY KEY (username, address)
    ) WITHOUT ROWID;
    "#,
];
