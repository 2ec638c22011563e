"""Every Redis key name mailgate uses, in one place.

Per-account keys carry the account id as a hash tag (``mg:{<account>}:...``) so that every
multi-key update of one account stays in one slot of a Redis Cluster. Instance-wide keys share the
fixed tag ``{mg}``. Nothing outside this module builds a key name.
"""

from __future__ import annotations

PREFIX = "mg"
GLOBAL_TAG = "{mg}"


def _g(name: str) -> str:
    return f"{PREFIX}:{GLOBAL_TAG}:{name}"


def _a(account: str, name: str) -> str:
    return f"{PREFIX}:{{{account}}}:{name}"


# --- instance-wide -------------------------------------------------------------------------
SETTINGS = _g("settings")  # hash: setting name -> JSON value
ACCOUNTS = _g("accounts")  # zset: account id -> creation time (ms)
TOKENS = _g("tokens")  # zset: token id -> creation time (ms)
NODES = _g("nodes")  # zset: node id -> last heartbeat (ms)
CONTROL_CHANNEL = _g("control")  # pub/sub: account lifecycle and reconnect requests
SECRET_CHECK = _g("secret-check")  # an encrypted known value: detects a changed MAILGATE_SECRET


def token(token_id: str) -> str:
    """Hash: one API token's metadata (the token itself is never stored)."""
    return _g(f"token:{token_id}")


def node(node_id: str) -> str:
    """Hash: a process's roles, host, start time and owned-account count."""
    return _g(f"node:{node_id}")


# --- per account ---------------------------------------------------------------------------
def account(account_id: str) -> str:
    """String: the account record (msgpack, secrets encrypted)."""
    return _a(account_id, "account")


def account_state(account_id: str) -> str:
    """Hash: runtime state of the account (state, lastError, connections, ...)."""
    return _a(account_id, "state")


def lease(account_id: str) -> str:
    """String: the node id that runs the account, with a TTL."""
    return _a(account_id, "lease")


def fence(account_id: str) -> str:
    """Integer: fencing token, incremented on every new lease."""
    return _a(account_id, "fence")


def mailbox_ids(account_id: str) -> str:
    """Hash: ``path\\0uidvalidity`` -> small per-account mailbox number (ids survive flushes)."""
    return _a(account_id, "mbid")


def mailbox_paths(account_id: str) -> str:
    """Hash: mailbox number -> ``path\\0uidvalidity`` (to resolve message ids)."""
    return _a(account_id, "mbno")


def mailbox_seq(account_id: str) -> str:
    """Integer: last mailbox number handed out."""
    return _a(account_id, "mbseq")


def mailbox_state(account_id: str, mailbox_no: int) -> str:
    """Hash: a mailbox's sync cursor (uidvalidity, uidnext, highestmodseq, messages, ...)."""
    return _a(account_id, f"mb:{mailbox_no}")


def synced_mailboxes(account_id: str) -> str:
    """Hash: path -> mailbox number of every mailbox the indexer tracks now."""
    return _a(account_id, "mbsync")


def sync_meta(account_id: str) -> str:
    """Hash: the indexer's account-wide facts (initialized, indexer, progress counters)."""
    return _a(account_id, "sync")


def index_chunk(account_id: str, mailbox_no: int, chunk: int) -> str:
    """String: packed index records of one UID range of a mailbox (full indexer)."""
    return _a(account_id, f"ix:{mailbox_no}:{chunk}")


def index_chunks(account_id: str, mailbox_no: int) -> str:
    """Set: chunk numbers present for a mailbox (to drop them without SCAN)."""
    return _a(account_id, f"ixc:{mailbox_no}")


def keywords(account_id: str, mailbox_no: int) -> str:
    """Hash: uid -> custom keywords of messages that have any (full indexer)."""
    return _a(account_id, f"kw:{mailbox_no}")


def events(account_id: str) -> str:
    """Stream: the account's durable event log (every event, before any delivery)."""
    return _a(account_id, "events")


def account_keys(account_id: str) -> list[str]:
    """Keys deleted together with the account."""
    return [
        account(account_id),
        account_state(account_id),
        lease(account_id),
        fence(account_id),
        mailbox_ids(account_id),
        mailbox_paths(account_id),
        mailbox_seq(account_id),
        synced_mailboxes(account_id),
        sync_meta(account_id),
        events(account_id),
    ]


def kept_on_flush(account_id: str) -> frozenset[str]:
    """Keys a flush keeps: the record, runtime state, lease, mailbox numbers and event log."""
    return frozenset(
        {
            account(account_id),
            account_state(account_id),
            lease(account_id),
            fence(account_id),
            mailbox_ids(account_id),
            mailbox_paths(account_id),
            mailbox_seq(account_id),
            events(account_id),
        }
    )


def account_pattern(account_id: str) -> str:
    """SCAN pattern matching every key of one account (glob characters escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in account_id)
    return f"{PREFIX}:{{{escaped}}}:*"


# --- webhook delivery (services/webhooks) ---------------------------------------------------
# Per account: the delivery state and the delivery lock share the account's hash tag with its
# event stream, so the cursor write can check the lock in one script. Instance-wide: the
# schedule of accounts with undelivered events, the accounts in retry backoff, counters.
WEBHOOK_PENDING = _g("wh:pending")  # zset: account -> time (ms) it is next due for delivery
WEBHOOK_RETRY = _g("wh:retry")  # zset: account -> time (ms) of its next retry (in backoff)
WEBHOOK_COUNTERS = _g("wh:counters")  # hash: completed / failed / skipped -> count
WEBHOOK_WAKE = _g("wh:wake")  # pub/sub: "an event was appended" hint for the workers
WEBHOOK_RECOVERY_LOCK = _g("wh:recovery")  # string: one worker at a time scans for lost marks


def queue_paused(queue: str) -> str:
    """String: present while the named queue (``notify``, ``submit``, ...) is paused."""
    return _g(f"queue:{queue}:paused")


def webhook_state(account_id: str) -> str:
    """Hash: ``cursor`` (last handled event id), ``attemptId``/``attempts`` of the head event,
    ``waiting`` (events appended and not yet handled), ``lastError``."""
    return _a(account_id, "wh:state")


def webhook_lock(account_id: str) -> str:
    """String: the delivery lock of the account (owner token, short TTL renewed while held)."""
    return _a(account_id, "wh:lock")


# --- sending: outbox, idempotency, gateways, templates (services/sending) ------------------
# The outbox is instance-wide and lives in the ``{mg}`` slot as a whole: the claim script moves
# a job between the due and active sets and edits its hash, and the enqueue script writes the
# raw message, the job, the schedule and the idempotency record in one atomic step, so every key
# those scripts touch must share one slot.
OUTBOX_DUE = _g("ob:due")  # zset: queue id -> time (ms) the job is due (queued, retry, sendAt)
OUTBOX_ACTIVE = _g("ob:active")  # zset: queue id -> lease expiry (ms) of a claimed job
OUTBOX_ALL = _g("ob:all")  # zset: queue id -> creation time (ms): every job not finished
OUTBOX_WAKE = _g("ob:wake")  # pub/sub: "a job was queued" hint for the outbox workers
GATEWAYS = _g("gateways")  # zset: gateway id -> creation time (ms)
TEMPLATES_PUBLIC = _g("tpl:public")  # zset: template id -> creation time (ms), public ones


def outbox_job(queue_id: str) -> str:
    """Hash: one outbox job (account, state, attempts, attemptsMade, lastError, progress...)."""
    return _g(f"ob:job:{queue_id}")


def outbox_raw(queue_id: str) -> str:
    """String: the RFC 822 message of an outbox job, stored once."""
    return _g(f"ob:raw:{queue_id}")


def idempotency(account_id: str, key_hash: str) -> str:
    """String: the first reply to a submit with this Idempotency-Key (24 h TTL). In the ``{mg}``
    slot, not the account's, so the enqueue script can claim it with the job."""
    return _g(f"idem:{account_id}:{key_hash}")


def gateway(gateway_id: str) -> str:
    """Hash: an SMTP gateway (host, port, secure, user, encrypted pass, counters, lastError)."""
    return _g(f"gw:{gateway_id}")


def template(template_id: str) -> str:
    """String: a stored template (JSON: account, name, description, format, content, dates)."""
    return _g(f"tpl:t:{template_id}")


def account_templates(account_id: str) -> str:
    """Zset: template id -> creation time (ms), the account's own templates."""
    return _a(account_id, "tpl")


# --- OAuth2 applications, consent state, token refresh lock (services/oauth2) ---------------
# Apps are instance-wide records; a consent ``state`` is a single-use key with a short TTL
# (read and deleted in one GETDEL); the refresh lock carries the account's hash tag.
OAUTH_APPS = _g("oauth:apps")  # zset: app id -> creation time (ms)


def oauth_app(app_id: str) -> str:
    """String: one OAuth2 application (JSON; clientSecret/serviceKey encrypted)."""
    return _g(f"oauth:app:{app_id}")


def oauth_state(state: str) -> str:
    """String: a pending consent (JSON: account fields, app, PKCE verifier), short TTL."""
    return _g(f"oauth:state:{state}")


def oauth_lock(account_id: str) -> str:
    """String: owner of the account's token refresh (SET NX PX; released with an owner check)."""
    return _a(account_id, "oauth:lock")


# --- misc EmailEngine operations: logs, token audit, webhook routes, blocklists, delivery ---
# --- tests, exports (services/account_logs, token_audit, webhook_routes, blocklists, ... ) ---
WEBHOOK_ROUTES = _g("whr:all")  # zset: webhook route id -> creation time (ms)
BLOCKLISTS = _g("bl:lists")  # zset: list id -> creation time (ms) of the list's first entry


def account_log(account_id: str) -> str:
    """List: the account's recent log lines (JSON), newest first, capped at ``maxLogLines``."""
    return _a(account_id, "log")


def token_audit(token_id: str) -> str:
    """List: a token's audit entries (JSON), newest first, capped."""
    return _g(f"tok:audit:{token_id}")


def webhook_route(route_id: str) -> str:
    """String: one webhook route (JSON: name, targetUrl, enabled, content.fn/map, ...)."""
    return _g(f"whr:r:{route_id}")


def blocklist_entries(list_id: str) -> str:
    """Hash: recipient address -> entry (JSON: account, reason, source, created, ...)."""
    return _g(f"bl:e:{list_id}")


def blocklist_order(list_id: str) -> str:
    """Zset: recipient address -> time (ms) it was listed (paging order)."""
    return _g(f"bl:o:{list_id}")


def delivery_test(test_id: str) -> str:
    """Hash: one delivery test (account, messageId, queueId, created), with a TTL."""
    return _g(f"dt:{test_id}")


def account_exports(account_id: str) -> str:
    """Zset: export id -> creation time (ms), the account's exports."""
    return _a(account_id, "exports")


def account_export(account_id: str, export_id: str) -> str:
    """Hash: one export job (status, phase, options, progress counters, file, node)."""
    return _a(account_id, f"export:{export_id}")


# --- admin web UI (api/admin, services/admin_auth) -----------------------------------------
# The admin password hash and the sign-in sessions are instance-wide. A session key holds the
# SHA-256 of the cookie value (the cookie itself is never stored) and expires on its own; the
# zset lists live sessions so a password change can end them all. Failed sign-ins are counted
# per client address with a TTL (the growing lockout of services/admin_auth.py).
ADMIN_PASSWORD = _g("admin:password")  # string: argon2 hash of the admin password
ADMIN_SESSIONS = _g("admin:sessions")  # zset: session hash -> absolute expiry (ms)


def admin_session(session_hash: str) -> str:
    """Hash: one admin session (csrf token, created, ip, flash message), with a TTL."""
    return _g(f"admin:session:{session_hash}")


def admin_signin_failures(client: str) -> str:
    """Hash: ``count`` of failed admin sign-ins from one address and ``until`` (ms), TTL."""
    return _g(f"admin:fail:{client}")


# --- Microsoft Graph backend (backends/graph) ----------------------------------------------
# Per-folder delta cursors and the full indexer's per-message state, the change-notification
# subscription of the account, and notification hints waiting for the account's runner.
def graph_folders(account_id: str) -> str:
    """Hash: Graph folder id -> JSON cursor (path, deltaLink or nextLink, complete, announce)."""
    return _a(account_id, "gf")


def graph_index(account_id: str, folder_key: str) -> str:
    """Hash: message id -> indexed state (flags and categories) of one folder (full indexer)."""
    return _a(account_id, f"gi:{folder_key}")


def graph_subscription(account_id: str) -> str:
    """Hash: the change-notification subscription (id, clientState, expires, resource)."""
    return _a(account_id, "gsub")


def graph_hints(account_id: str) -> str:
    """List: notifications received for the account, waiting for its runner's next pass."""
    return _a(account_id, "ghint")


# --- Gmail API accounts (backends/gmail) -----------------------------------------------------
# Per account: the history cursor and facts of the sync, the full indexer's label bits per
# message (12-byte records in chunked strings, backends/gmail/index.py, plus a side hash for
# what does not fit), the bit number of every label seen, the progress of a first index under
# way (resumable page by page), and the Pub/Sub ack ids waiting for the next commit.
# Instance-wide: which account a Pub/Sub notification's address belongs to, and each Pub/Sub
# app's puller status.
GMAIL_PUBSUB_APPS = _g("gm:pubsub:apps")  # set: Pub/Sub app ids some Gmail account watches with


def gmail_state(account_id: str) -> str:
    """Hash: ``historyId`` (sync cursor), ``indexer``, ``ixBits`` (chunk bits of the index),
    ``labels`` (JSON id -> path of the mailboxes last seen), ``watchExpiration`` (ms),
    ``pubSubApp``, ``email``."""
    return _a(account_id, "gm:state")


def gmail_index(account_id: str) -> str:
    """Hash (legacy, migrated on the next pass): Gmail message id -> label bits (decimal)."""
    return _a(account_id, "gm:ix")


def gmail_index_chunk(account_id: str, chunk: int) -> str:
    """String: packed 12-byte records (message id, label bits) of one hash bucket of ids."""
    return _a(account_id, f"gm:ix:{chunk}")


def gmail_index_spill(account_id: str) -> str:
    """Hash: message id -> label bits (decimal) of messages whose record cannot hold them."""
    return _a(account_id, "gm:ixs")


def gmail_baseline(account_id: str) -> str:
    """Hash: a first index under way: ``historyId`` (captured at its start), ``indexer``, and
    per listing (``""`` for every message, else a label id) ``t:<id>`` (next page token) or
    ``d:<id>`` (done)."""
    return _a(account_id, "gm:base")


def gmail_baseline_stage(account_id: str) -> str:
    """Hash: message id -> label bits gathered so far by a first index under way."""
    return _a(account_id, "gm:bx")


def gmail_label_bits(account_id: str) -> str:
    """Hash: label id -> its bit number in index records."""
    return _a(account_id, "gm:lb")


def gmail_pending_acks(account_id: str) -> str:
    """List: Pub/Sub ack ids of notifications for the account, acknowledged after the commit of
    the sync pass they caused."""
    return _a(account_id, "gm:acks")


def gmail_pubsub_routes(app_id: str) -> str:
    """Hash: lower-case email address -> account id, for notifications of a Pub/Sub app."""
    return _g(f"gm:pubsub:routes:{app_id}")


def gmail_pubsub_status(app_id: str) -> str:
    """Hash: a Pub/Sub app's puller status (topic, subscription, lastPull, lastError, counts)."""
    return _g(f"gm:pubsub:status:{app_id}")
