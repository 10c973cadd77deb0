import type { Migration } from '../migrate.js';

/**
 * Chronicle's tables (versions 100–199). One statement per migration: PGlite runs each migration
 * as a single prepared statement.
 *
 * chronicle_chain holds one head row per chain (tenant). Every append locks the head rows it
 * extends FOR UPDATE inside its transaction: that, not a sequence, is what keeps seq gapless and
 * the chain unforked with many writers in many processes.
 *
 * chronicle_event holds the events. `body` is the RFC 8785 canonical JSON that is hashed, stored
 * as text exactly as hashed; the other columns are derived from it for queries, and verify checks
 * that they still agree with it.
 *
 * The guards refuse UPDATE, DELETE and TRUNCATE of events, and moving a head row backwards or
 * removing it. They are ENABLE ALWAYS, so session_replication_role = replica does not silence
 * them; only an owner or superuser who disables them can tamper, and that is what the signed
 * checkpoints outside the database catch.
 */
export const chronicleMigrations: readonly Migration[] = [
  {
    version: 101,
    name: 'chronicle_chain',
    sql: `CREATE TABLE chronicle_chain (
      tenant text PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      head_seq bigint NOT NULL CHECK (head_seq >= 0),
      head_hash text NOT NULL,
      -- Time of the head event (ISO 8601, ms). Appends never stamp below it, so time never runs backwards along a chain.
      head_time text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now()
    )`,
  },
  {
    version: 102,
    name: 'chronicle_event',
    sql: `CREATE TABLE chronicle_event (
      tenant text NOT NULL,
      seq bigint NOT NULL CHECK (seq > 0),
      time timestamptz NOT NULL,
      type text NOT NULL,
      code text,
      actor_kind text NOT NULL,
      actor_id text NOT NULL,
      request_id text,
      decision text,
      device_ids text[] NOT NULL DEFAULT '{}',
      body text NOT NULL,
      prev_hash text NOT NULL,
      hash text NOT NULL,
      PRIMARY KEY (tenant, seq)
    )`,
  },
  {
    version: 103,
    name: 'chronicle_event_time_index',
    sql: `CREATE INDEX chronicle_event_time ON chronicle_event (tenant, time)`,
  },
  {
    version: 104,
    name: 'chronicle_event_type_index',
    sql: `CREATE INDEX chronicle_event_type ON chronicle_event (tenant, type, seq)`,
  },
  {
    version: 105,
    name: 'chronicle_event_actor_index',
    sql: `CREATE INDEX chronicle_event_actor ON chronicle_event (tenant, actor_id, seq)`,
  },
  {
    version: 106,
    name: 'chronicle_event_devices_index',
    sql: `CREATE INDEX chronicle_event_devices ON chronicle_event USING gin (device_ids)`,
  },
  {
    version: 107,
    name: 'chronicle_event_denied_index',
    sql: `-- Denials are what reviewers look for and a small share of the trail: a partial index keeps them cheap to find.
    CREATE INDEX chronicle_event_denied ON chronicle_event (tenant, seq) WHERE decision IN ('deny', 'denied')`,
  },
  {
    version: 108,
    name: 'chronicle_append',
    // The append transaction in one statement, so a batch costs one round trip: create missing
    // head rows (in tenant order), lock the batch's head rows FOR UPDATE (in tenant order: writers
    // in other processes wait, never deadlock), splice seq and time into each pre-canonicalised
    // body, chain the hashes, insert every event with one INSERT and move the heads. It commits
    // as one implicit transaction or not at all. Node recomputes each returned hash, and verify
    // recomputes everything from the stored text: this function is never trusted on its own.
    sql: `CREATE FUNCTION chronicle_append(
        p_tenant text[], p_head text[], p_tail text[], p_type text[], p_code text[],
        p_actor_kind text[], p_actor_id text[], p_request_id text[], p_decision text[], p_devices text[],
        p_now text, p_genesis text)
      RETURNS TABLE (out_seq bigint, out_prev_hash text, out_hash text, out_time text)
      LANGUAGE plpgsql AS $$
      DECLARE
        n int := coalesce(cardinality(p_tenant), 0);
        chains text[];
        h_tenant text[] := '{}';
        h_seq bigint[] := '{}';
        h_hash text[] := '{}';
        h_time text[] := '{}';
        o_seq bigint[] := '{}';
        o_prev text[] := '{}';
        o_hash text[] := '{}';
        o_time text[] := '{}';
        o_body text[] := '{}';
        r record;
        k int;
        s bigint;
        body text;
        hx text;
        written bigint;
      BEGIN
        IF n = 0 THEN RETURN; END IF;
        SELECT array_agg(t ORDER BY t) INTO chains FROM (SELECT DISTINCT t FROM unnest(p_tenant) AS t) d;
        INSERT INTO chronicle_chain (tenant, head_seq, head_hash)
          SELECT t, 0, p_genesis FROM unnest(chains) AS t ORDER BY t
          ON CONFLICT (tenant) DO NOTHING;
        FOR r IN SELECT c.tenant, c.head_seq, c.head_hash, c.head_time FROM chronicle_chain c
                 WHERE c.tenant = ANY(chains) ORDER BY c.tenant FOR UPDATE LOOP
          h_tenant := h_tenant || r.tenant;
          h_seq := h_seq || r.head_seq;
          h_hash := h_hash || r.head_hash;
          -- Time never runs backwards along a chain, even when the clocks of replicas disagree.
          h_time := h_time || greatest(p_now, r.head_time);
        END LOOP;
        IF cardinality(h_tenant) <> cardinality(chains) THEN
          RAISE EXCEPTION 'chronicle_append: locked % of % head rows', cardinality(h_tenant), cardinality(chains);
        END IF;
        FOR i IN 1 .. n LOOP
          k := array_position(h_tenant, p_tenant[i]);
          s := h_seq[k] + 1;
          body := p_head[i] || s::text || ',"time":"' || h_time[k] || '"' || p_tail[i];
          hx := encode(sha256(decode(h_hash[k], 'hex') || sha256(convert_to(body, 'UTF8'))), 'hex');
          o_seq[i] := s;
          o_prev[i] := h_hash[k];
          o_hash[i] := hx;
          o_time[i] := h_time[k];
          o_body[i] := body;
          h_seq[k] := s;
          h_hash[k] := hx;
        END LOOP;
        INSERT INTO chronicle_event (tenant, seq, time, type, code, actor_kind, actor_id, request_id, decision, device_ids, body, prev_hash, hash)
          SELECT u.tenant, u.seq, u.tm::timestamptz, u.type, u.code, u.actor_kind, u.actor_id, u.request_id, u.decision,
                 coalesce(string_to_array(nullif(u.devices, ''), ','), '{}'::text[]), u.body, u.prev_hash, u.hash
          FROM unnest(p_tenant, o_seq, o_time, p_type, p_code, p_actor_kind, p_actor_id, p_request_id, p_decision, p_devices, o_body, o_prev, o_hash)
            AS u(tenant, seq, tm, type, code, actor_kind, actor_id, request_id, decision, devices, body, prev_hash, hash);
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
          RAISE EXCEPTION 'chronicle_append: wrote % of % events', written, n;
        END IF;
        UPDATE chronicle_chain c SET head_seq = h.seq, head_hash = h.hash, head_time = h.tm
          FROM unnest(h_tenant, h_seq, h_hash, h_time) AS h(tenant, seq, hash, tm)
          WHERE c.tenant = h.tenant;
        RETURN QUERY SELECT o.seq, o.prev, o.hash, o.tm FROM unnest(o_seq, o_prev, o_hash, o_time) WITH ORDINALITY AS o(seq, prev, hash, tm, ord) ORDER BY o.ord;
      END
      $$`,
  },
  {
    version: 109,
    name: 'chronicle_refuse_change',
    sql: `CREATE FUNCTION chronicle_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'Chronicle is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Events are never changed or removed; append a new event instead.';
    END
    $$`,
  },
  {
    version: 110,
    name: 'chronicle_event_append_only',
    sql: `CREATE TRIGGER chronicle_event_append_only
      BEFORE UPDATE OR DELETE ON chronicle_event
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 111,
    name: 'chronicle_event_no_truncate',
    sql: `CREATE TRIGGER chronicle_event_no_truncate
      BEFORE TRUNCATE ON chronicle_event
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 112,
    name: 'chronicle_chain_forward_only',
    sql: `CREATE TRIGGER chronicle_chain_forward_only
      BEFORE UPDATE ON chronicle_chain
      FOR EACH ROW WHEN (NEW.head_seq <= OLD.head_seq OR NEW.tenant IS DISTINCT FROM OLD.tenant)
      EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 113,
    name: 'chronicle_chain_no_delete',
    sql: `CREATE TRIGGER chronicle_chain_no_delete
      BEFORE DELETE ON chronicle_chain
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 114,
    name: 'chronicle_chain_no_truncate',
    sql: `CREATE TRIGGER chronicle_chain_no_truncate
      BEFORE TRUNCATE ON chronicle_chain
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 115,
    name: 'chronicle_event_append_only_always',
    sql: `ALTER TABLE chronicle_event ENABLE ALWAYS TRIGGER chronicle_event_append_only`,
  },
  {
    version: 116,
    name: 'chronicle_event_no_truncate_always',
    sql: `ALTER TABLE chronicle_event ENABLE ALWAYS TRIGGER chronicle_event_no_truncate`,
  },
  {
    version: 117,
    name: 'chronicle_chain_forward_only_always',
    sql: `ALTER TABLE chronicle_chain ENABLE ALWAYS TRIGGER chronicle_chain_forward_only`,
  },
  {
    version: 118,
    name: 'chronicle_chain_no_delete_always',
    sql: `ALTER TABLE chronicle_chain ENABLE ALWAYS TRIGGER chronicle_chain_no_delete`,
  },
  {
    version: 119,
    name: 'chronicle_chain_no_truncate_always',
    sql: `ALTER TABLE chronicle_chain ENABLE ALWAYS TRIGGER chronicle_chain_no_truncate`,
  },
  // The deployment identity: one row, made with the database, carried in every checkpoint line.
  // A checkpoint log names the database it signs, so two deployments sharing a directory are
  // told apart, and a database swapped or re-identified under a deployment's checkpoints shows.
  {
    version: 120,
    name: 'chronicle_instance',
    sql: `CREATE TABLE chronicle_instance (
      only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
      id text NOT NULL DEFAULT gen_random_uuid()::text CHECK (id ~ '^[0-9a-f-]{36}$'),
      created_at timestamptz NOT NULL DEFAULT now()
    )`,
  },
  {
    version: 121,
    name: 'chronicle_instance_row',
    sql: `INSERT INTO chronicle_instance DEFAULT VALUES`,
  },
  {
    version: 122,
    name: 'chronicle_instance_fixed',
    sql: `CREATE TRIGGER chronicle_instance_fixed
      BEFORE UPDATE OR DELETE ON chronicle_instance
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 123,
    name: 'chronicle_instance_no_truncate',
    sql: `CREATE TRIGGER chronicle_instance_no_truncate
      BEFORE TRUNCATE ON chronicle_instance
      FOR EACH STATEMENT EXECUTE FUNCTION chronicle_refuse_change()`,
  },
  {
    version: 124,
    name: 'chronicle_instance_fixed_always',
    sql: `ALTER TABLE chronicle_instance ENABLE ALWAYS TRIGGER chronicle_instance_fixed`,
  },
  {
    version: 125,
    name: 'chronicle_instance_no_truncate_always',
    sql: `ALTER TABLE chronicle_instance ENABLE ALWAYS TRIGGER chronicle_instance_no_truncate`,
  },
  {
    version: 140,
    name: 'chronicle_append_expecting',
    // chronicle_append with the heads the writer expects (p_expect_*, NULL: none). The writer
    // knows the heads of the chains it writes, so it sends the next batch while the one before is
    // still committing (pipelined group commit), expecting the heads that batch leaves. If this one
    // takes the locks first, or the one before did not commit, the heads differ and it writes
    // nothing (no rows), so seqs never leave call order. Chaining stays in the database, and Node
    // compares every returned hash with the one it computed.
    sql: `CREATE FUNCTION chronicle_append_expecting(
        p_expect_chain text[], p_expect_seq bigint[], p_expect_hash text[],
        p_tenant text[], p_head text[], p_tail text[], p_type text[], p_code text[],
        p_actor_kind text[], p_actor_id text[], p_request_id text[], p_decision text[], p_devices text[],
        p_now text, p_genesis text)
      RETURNS TABLE (out_seq bigint, out_prev_hash text, out_hash text, out_time text)
      LANGUAGE plpgsql AS $$
      DECLARE
        n int := coalesce(cardinality(p_tenant), 0);
        chains text[];
        h_tenant text[] := '{}';
        h_seq bigint[] := '{}';
        h_hash text[] := '{}';
        h_time text[] := '{}';
        o_seq bigint[] := '{}';
        o_prev text[] := '{}';
        o_hash text[] := '{}';
        o_time text[] := '{}';
        o_body text[] := '{}';
        r record;
        k int;
        s bigint;
        body text;
        hx text;
        written bigint;
      BEGIN
        IF n = 0 THEN RETURN; END IF;
        SELECT array_agg(t ORDER BY t) INTO chains FROM (SELECT DISTINCT t FROM unnest(p_tenant) AS t) d;
        INSERT INTO chronicle_chain (tenant, head_seq, head_hash)
          SELECT t, 0, p_genesis FROM unnest(chains) AS t ORDER BY t
          ON CONFLICT (tenant) DO NOTHING;
        FOR r IN SELECT c.tenant, c.head_seq, c.head_hash, c.head_time FROM chronicle_chain c
                 WHERE c.tenant = ANY(chains) ORDER BY c.tenant FOR UPDATE LOOP
          h_tenant := h_tenant || r.tenant;
          h_seq := h_seq || r.head_seq;
          h_hash := h_hash || r.head_hash;
          -- Time never runs backwards along a chain, even when the clocks of replicas disagree.
          h_time := h_time || greatest(p_now, r.head_time);
        END LOOP;
        IF cardinality(h_tenant) <> cardinality(chains) THEN
          RAISE EXCEPTION 'chronicle_append_expecting: locked % of % head rows', cardinality(h_tenant), cardinality(chains);
        END IF;
        -- The heads the writer chained this batch on: another head (a batch before it that did
        -- not commit, another writer in between) and nothing is written; no rows is the answer.
        IF p_expect_chain IS NOT NULL THEN
          FOR j IN 1 .. cardinality(h_tenant) LOOP
            k := array_position(p_expect_chain, h_tenant[j]);
            IF k IS NULL OR h_seq[j] IS DISTINCT FROM p_expect_seq[k] OR h_hash[j] IS DISTINCT FROM p_expect_hash[k] THEN
              RETURN;
            END IF;
          END LOOP;
        END IF;
        FOR i IN 1 .. n LOOP
          k := array_position(h_tenant, p_tenant[i]);
          s := h_seq[k] + 1;
          body := p_head[i] || s::text || ',"time":"' || h_time[k] || '"' || p_tail[i];
          hx := encode(sha256(decode(h_hash[k], 'hex') || sha256(convert_to(body, 'UTF8'))), 'hex');
          o_seq[i] := s;
          o_prev[i] := h_hash[k];
          o_hash[i] := hx;
          o_time[i] := h_time[k];
          o_body[i] := body;
          h_seq[k] := s;
          h_hash[k] := hx;
        END LOOP;
        INSERT INTO chronicle_event (tenant, seq, time, type, code, actor_kind, actor_id, request_id, decision, device_ids, body, prev_hash, hash)
          SELECT u.tenant, u.seq, u.tm::timestamptz, u.type, u.code, u.actor_kind, u.actor_id, u.request_id, u.decision,
                 coalesce(string_to_array(nullif(u.devices, ''), ','), '{}'::text[]), u.body, u.prev_hash, u.hash
          FROM unnest(p_tenant, o_seq, o_time, p_type, p_code, p_actor_kind, p_actor_id, p_request_id, p_decision, p_devices, o_body, o_prev, o_hash)
            AS u(tenant, seq, tm, type, code, actor_kind, actor_id, request_id, decision, devices, body, prev_hash, hash);
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
          RAISE EXCEPTION 'chronicle_append_expecting: wrote % of % events', written, n;
        END IF;
        UPDATE chronicle_chain c SET head_seq = h.seq, head_hash = h.hash, head_time = h.tm
          FROM unnest(h_tenant, h_seq, h_hash, h_time) AS h(tenant, seq, hash, tm)
          WHERE c.tenant = h.tenant;
        RETURN QUERY SELECT o.seq, o.prev, o.hash, o.tm FROM unnest(o_seq, o_prev, o_hash, o_time) WITH ORDINALITY AS o(seq, prev, hash, tm, ord) ORDER BY o.ord;
      END
      $$`,
  },
  // The append functions again, cheaper per batch (the same statements, the same results):
  //  - PL/pgSQL left the plan choice to the plan cache, which built a custom plan on every call
  //    (the arrays' lengths move its estimates, never its plan): about a quarter of a one-event
  //    batch's database CPU. Generic plans are made once per connection.
  //  - A head row is never removed, so a plain read tells whether the batch's chains have theirs;
  //    only a batch that starts a chain runs the INSERT … ON CONFLICT (a write, on every batch
  //    before).
  { version: 310, name: 'chronicle_append_generic_plans', sql: appendFunctionSql('chronicle_append') },
  { version: 311, name: 'chronicle_append_expecting_generic_plans', sql: appendFunctionSql('chronicle_append_expecting') },
];

/**
 * The append functions of migrations 310 and 311, with generic plans. chronicle_append_expecting is
 * chronicle_append with the heads the writer expects (p_expect_*, NULL: none; see migration 140):
 * when the heads it locks are not those, it writes nothing and returns no rows.
 */
function appendFunctionSql(name: 'chronicle_append' | 'chronicle_append_expecting'): string {
  const expecting = name === 'chronicle_append_expecting';
  const expectParams = expecting ? '\n        p_expect_chain text[], p_expect_seq bigint[], p_expect_hash text[],' : '';
  const expectCheck = expecting
    ? `
        -- The heads the writer chained this batch on: another head (a batch before it that did
        -- not commit, another writer in between) and nothing is written; no rows is the answer.
        IF p_expect_chain IS NOT NULL THEN
          FOR j IN 1 .. cardinality(h_tenant) LOOP
            k := array_position(p_expect_chain, h_tenant[j]);
            IF k IS NULL OR h_seq[j] IS DISTINCT FROM p_expect_seq[k] OR h_hash[j] IS DISTINCT FROM p_expect_hash[k] THEN
              RETURN;
            END IF;
          END LOOP;
        END IF;`
    : '';
  return `CREATE OR REPLACE FUNCTION ${name}(${expectParams}
        p_tenant text[], p_head text[], p_tail text[], p_type text[], p_code text[],
        p_actor_kind text[], p_actor_id text[], p_request_id text[], p_decision text[], p_devices text[],
        p_now text, p_genesis text)
      RETURNS TABLE (out_seq bigint, out_prev_hash text, out_hash text, out_time text)
      LANGUAGE plpgsql
      SET plan_cache_mode = force_generic_plan
      AS $$
      DECLARE
        n int := coalesce(cardinality(p_tenant), 0);
        chains text[];
        h_tenant text[] := '{}';
        h_seq bigint[] := '{}';
        h_hash text[] := '{}';
        h_time text[] := '{}';
        o_seq bigint[] := '{}';
        o_prev text[] := '{}';
        o_hash text[] := '{}';
        o_time text[] := '{}';
        o_body text[] := '{}';
        r record;
        k int;
        s bigint;
        body text;
        hx text;
        written bigint;
      BEGIN
        IF n = 0 THEN RETURN; END IF;
        SELECT array_agg(t ORDER BY t) INTO chains FROM (SELECT DISTINCT t FROM unnest(p_tenant) AS t) d;
        -- Head rows are never removed: once a chain has one, a plain read is enough to skip the insert.
        IF (SELECT count(*) FROM chronicle_chain c WHERE c.tenant = ANY(chains)) < cardinality(chains) THEN
          INSERT INTO chronicle_chain (tenant, head_seq, head_hash)
            SELECT t, 0, p_genesis FROM unnest(chains) AS t ORDER BY t
            ON CONFLICT (tenant) DO NOTHING;
        END IF;
        FOR r IN SELECT c.tenant, c.head_seq, c.head_hash, c.head_time FROM chronicle_chain c
                 WHERE c.tenant = ANY(chains) ORDER BY c.tenant FOR UPDATE LOOP
          h_tenant := h_tenant || r.tenant;
          h_seq := h_seq || r.head_seq;
          h_hash := h_hash || r.head_hash;
          -- Time never runs backwards along a chain, even when the clocks of replicas disagree.
          h_time := h_time || greatest(p_now, r.head_time);
        END LOOP;
        IF cardinality(h_tenant) <> cardinality(chains) THEN
          RAISE EXCEPTION '${name}: locked % of % head rows', cardinality(h_tenant), cardinality(chains);
        END IF;${expectCheck}
        FOR i IN 1 .. n LOOP
          k := array_position(h_tenant, p_tenant[i]);
          s := h_seq[k] + 1;
          body := p_head[i] || s::text || ',"time":"' || h_time[k] || '"' || p_tail[i];
          hx := encode(sha256(decode(h_hash[k], 'hex') || sha256(convert_to(body, 'UTF8'))), 'hex');
          o_seq[i] := s;
          o_prev[i] := h_hash[k];
          o_hash[i] := hx;
          o_time[i] := h_time[k];
          o_body[i] := body;
          h_seq[k] := s;
          h_hash[k] := hx;
        END LOOP;
        INSERT INTO chronicle_event (tenant, seq, time, type, code, actor_kind, actor_id, request_id, decision, device_ids, body, prev_hash, hash)
          SELECT u.tenant, u.seq, u.tm::timestamptz, u.type, u.code, u.actor_kind, u.actor_id, u.request_id, u.decision,
                 coalesce(string_to_array(nullif(u.devices, ''), ','), '{}'::text[]), u.body, u.prev_hash, u.hash
          FROM unnest(p_tenant, o_seq, o_time, p_type, p_code, p_actor_kind, p_actor_id, p_request_id, p_decision, p_devices, o_body, o_prev, o_hash)
            AS u(tenant, seq, tm, type, code, actor_kind, actor_id, request_id, decision, devices, body, prev_hash, hash);
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> n THEN
          RAISE EXCEPTION '${name}: wrote % of % events', written, n;
        END IF;
        UPDATE chronicle_chain c SET head_seq = h.seq, head_hash = h.hash, head_time = h.tm
          FROM unnest(h_tenant, h_seq, h_hash, h_time) AS h(tenant, seq, hash, tm)
          WHERE c.tenant = h.tenant;
        RETURN QUERY SELECT o.seq, o.prev, o.hash, o.tm FROM unnest(o_seq, o_prev, o_hash, o_time) WITH ORDINALITY AS o(seq, prev, hash, tm, ord) ORDER BY o.ord;
      END
      $$`;
}
