-- A description of everything inventory_ext put into the current database, one line per object and
-- property, sorted, for comparing two databases: one where 0.1.0 was created and then updated
-- (ALTER EXTENSION inventory_ext UPDATE), one where the current version was created. Any line that
-- differs is a difference a DBA would see. Run with psql -AtX.
--
-- Covered: the extension row (version, config tables and their dump conditions); every member object
-- (pg_describe_object), so nothing is missed; functions and procedures with their full definition
-- (signature, body or C symbol, volatility, strictness, SECURITY DEFINER, parallel safety, leakproof,
-- settings), owner and grants; the schema's grants; tables, views and sequences with their columns in
-- order (type, collation, NOT NULL, default, identity), options, row-level security, owner and grants;
-- constraints; indexes; triggers with their enabled state; policies; rules; inheritance; event
-- triggers; sequences and what owns them; initial privileges (pg_init_privs: what pg_dump leaves out);
-- comments on all of these and on columns; the registrations CREATE EXTENSION itself made (builtin
-- rows). Lines of kind "initial privileges" must also match in a database with the DBA's own grants
-- (upgrade.sh compares the data database's with a fresh one's).
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'inventory_ext'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rels AS (
    SELECT c.*, c.oid AS relid FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
),
procs AS (
    SELECT p.*, p.oid AS procid FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
),
-- An ACL as text in a fixed order (the order of grants is not part of what they allow).
acl(oid, kind, text) AS (
    SELECT procid, 'function', (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(proacl) a) FROM procs
    UNION ALL
    SELECT relid, 'relation', (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(relacl) a) FROM rels
),
lines(kind, object, detail) AS (
    SELECT 'extension', extname::text,
           format('version=%s owner=%s schema=%s relocatable=%s config=%s conditions=%s',
                  extversion, extowner::regrole, extnamespace::regnamespace, extrelocatable,
                  (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(extconfig) c),
                  (SELECT string_agg(x.c::regclass::text || ':' || x.w, ',' ORDER BY x.c::regclass::text)
                     FROM unnest(extconfig, extcondition) x(c, w)))
      FROM ext
    UNION ALL
    SELECT 'member', pg_describe_object(classid, objid, 0), '' FROM members
    UNION ALL
    SELECT 'schema', n.nspname::text,
           format('owner=%s acl=%s comment=%s', n.nspowner::regrole,
                  (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(n.nspacl) a),
                  obj_description(n.oid, 'pg_namespace'))
      FROM pg_namespace n WHERE n.nspname = 'inventory'
    UNION ALL
    SELECT 'function', procid::regprocedure::text,
           format('owner=%s acl=%s comment=%s definition=%s', proowner::regrole,
                  (SELECT text FROM acl WHERE acl.oid = procid AND kind = 'function'),
                  obj_description(procid, 'pg_proc'),
                  CASE WHEN prokind IN ('f', 'p') THEN pg_get_functiondef(procid) ELSE prokind::text END)
      FROM procs
    UNION ALL
    SELECT 'relation', relid::regclass::text,
           format('kind=%s owner=%s persistence=%s access_method=%s replica_identity=%s options=%s rls=%s force_rls=%s acl=%s comment=%s',
                  relkind, relowner::regrole, relpersistence, relam::regclass, relreplident, reloptions, relrowsecurity, relforcerowsecurity,
                  (SELECT text FROM acl WHERE acl.oid = relid AND kind = 'relation'), obj_description(relid, 'pg_class'))
      FROM rels
    UNION ALL
    SELECT 'view', relid::regclass::text, pg_get_viewdef(relid) FROM rels WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT 'column', format('%s.%s', a.attrelid::regclass, a.attname),
           format('position=%s type=%s collation=%s not_null=%s default=%s identity=%s generated=%s storage=%s compression=%s statistics=%s acl=%s comment=%s',
                  -- Position among the live columns: a dropped column leaves a gap an update may not have.
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attcollation::regcollation, a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attstorage, a.attcompression,
                  a.attstattarget, a.attacl,
                  col_description(a.attrelid, a.attnum))
      FROM pg_attribute a JOIN rels r ON r.relid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint', format('%s %s', c.conrelid::regclass, c.conname),
           format('%s deferrable=%s deferred=%s validated=%s comment=%s', pg_get_constraintdef(c.oid),
                  c.condeferrable, c.condeferred, c.convalidated, obj_description(c.oid, 'pg_constraint'))
      FROM pg_constraint c JOIN rels r ON r.relid = c.conrelid
    UNION ALL
    SELECT 'index', i.indexrelid::regclass::text,
           format('%s comment=%s', pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class'))
      FROM pg_index i JOIN rels r ON r.relid = i.indrelid
    UNION ALL
    SELECT 'trigger', format('%s %s', t.tgrelid::regclass, t.tgname),
           format('%s enabled=%s comment=%s', pg_get_triggerdef(t.oid), t.tgenabled, obj_description(t.oid, 'pg_trigger'))
      FROM pg_trigger t JOIN rels r ON r.relid = t.tgrelid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT 'policy', format('%s %s', p.polrelid::regclass, p.polname),
           format('permissive=%s command=%s roles=%s using=%s check=%s', p.polpermissive, p.polcmd,
                  (SELECT string_agg(CASE r WHEN 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY 1)
                     FROM unnest(p.polroles) r),
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
      FROM pg_policy p JOIN rels r ON r.relid = p.polrelid
    UNION ALL
    SELECT 'event trigger', e.evtname::text,
           format('event=%s tags=%s function=%s enabled=%s owner=%s', e.evtevent, e.evttags, e.evtfoid::regprocedure,
                  e.evtenabled, e.evtowner::regrole)
      FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
    UNION ALL
    SELECT 'sequence', s.seqrelid::regclass::text,
           format('type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s', s.seqtypid::regtype, s.seqstart,
                  s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                  (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ',') FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype IN ('a', 'i')))
      FROM pg_sequence s JOIN rels r ON r.relid = s.seqrelid
    UNION ALL
    SELECT 'type', t.oid::regtype::text, format('kind=%s owner=%s comment=%s', t.typtype, t.typowner::regrole,
                                                obj_description(t.oid, 'pg_type'))
      FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
    UNION ALL
    -- What pg_dump takes as given (it dumps only grants that differ): GRANTs and REVOKEs an extension
    -- script makes on its objects, with the ACL the object had then.
    SELECT 'initial privileges', pg_describe_object(i.classoid, i.objoid, i.objsubid),
           format('%s %s', i.privtype, (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(i.initprivs) a))
      FROM pg_init_privs i
     WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM members)
        -- The schema CREATE EXTENSION made for the control file's "schema" is not a member.
        OR (i.classoid = 'pg_namespace'::regclass AND i.objoid = 'inventory'::regnamespace)
    UNION ALL
    SELECT 'rule', format('%s %s', r.ev_class::regclass, r.rulename), pg_get_ruledef(r.oid)
      FROM pg_rewrite r JOIN rels ON rels.relid = r.ev_class WHERE r.rulename <> '_RETURN'
    UNION ALL
    SELECT 'inherits', i.inhrelid::regclass::text, i.inhparent::regclass::text
      FROM pg_inherits i JOIN rels ON rels.relid = i.inhrelid OR rels.relid = i.inhparent
    UNION ALL
    SELECT 'registered tenant table', relid::text, format('org_column=%s', org_column)
      FROM inventory.tenant_tables WHERE builtin
    UNION ALL
    SELECT 'registered ledger', ledger::text, row_to_json(t)::jsonb #- '{tracked_at}' #>> '{}'
      FROM inventory.tracked_ledgers t WHERE builtin
)
-- One line each: a definition's line breaks become \n.
SELECT kind || ' | ' || object || ' | ' || replace(coalesce(detail, '<null>'), E'\n', '\n') FROM lines ORDER BY 1;
