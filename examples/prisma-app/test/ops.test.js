'use strict';
// The operators' read-only routes: the tenant's reconcile runs, and WAL archiving health.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { admin, newOrg, startApp, stocked } = require('./helpers');

let app, a, b;
before(async () => {
  app = await startApp({ operatorToken: 'ops-secret' });
  [a, b] = [await newOrg(), await newOrg()];
});
after(async () => { await app.close(); await admin.end(); });

test("ops: reconcile runs, the tenant's own only, bigint ids exact", async () => {
  const s = await stocked(app, a);
  await app.req('POST', '/ledger', { headers: a.headers, body: { itemId: s.item.id, locationId: s.a.id, qty: '2' } });
  // A reconcile as pg_cron would run it (docs/DBA.md); here as the tenant, through the app's role.
  await app.prisma.$withTenant({ orgId: a.id }, (tx) => tx.$queryRaw`SELECT count(*) FROM inventory.reconcile('public."InventoryLedger"')`);
  const { rows: [run] } = await admin.query('SELECT id::text, status FROM inventory.reconcile_runs WHERE org_id = $1 ORDER BY id DESC LIMIT 1', [a.id]);
  const r = await app.req('GET', '/ops/reconcile-runs', { headers: a.headers });
  assert.equal(r.status, 200);
  assert.equal(r.body[0].id, run.id);
  assert.equal(r.body[0].status, run.status);
  assert.equal(typeof r.body[0].keys_checked, 'string');
  const other = await app.req('GET', '/ops/reconcile-runs', { headers: b.headers });
  assert.ok(other.body.every((x) => x.id !== run.id));
  assert.equal((await app.req('GET', '/ops/reconcile-runs')).status, 401);
});

test('ops: backup status behind the operator token', async () => {
  assert.equal((await app.req('GET', '/ops/backup-status')).status, 401);
  assert.equal((await app.req('GET', '/ops/backup-status', { headers: { authorization: 'Bearer nope' } })).status, 401);
  const r = await app.req('GET', '/ops/backup-status', { headers: { authorization: 'Bearer ops-secret' } });
  assert.equal(r.status, 200);
  assert.equal(r.body.archiving, false);  // the scratch cluster does not archive
  assert.equal(r.body.healthy, false);
  assert.equal(typeof r.body.detail, 'string');
});
