-- The attacks as the non-superuser owner of the tables (FORCE ROW LEVEL SECURITY holds it too).
\set attacker adv_owner
\ir attacks.inc
