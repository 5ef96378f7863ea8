-- The attacks as an application role that does not own the tables.
\set attacker adv_app
\ir attacks.inc
