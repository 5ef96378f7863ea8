'use strict';
// Two tenants over HTTP: the same SKU and code in both, and neither ever sees, changes or references the
// other's rows (404, as for a row that does not exist).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { admin, newOrg, startApp, stocked } = require('./helpers');

let app, a, b, sa, sb;
before(async () => {
  app = await startApp();
  [a, b] = [await newOrg(), await newOrg()];
  sa = await stocked(app, a, 'same');
  sb = await stocked(app, b, 'same');  // the same SKU and location codes: unique per tenant
  await app.req('POST', '/ledger', { headers: a.headers, body: { itemId: sa.item.id, locationId: sa.a.id, qty: '7' } });
  await app.req('POST', '/ledger', { headers: b.headers, body: { itemId: sb.item.id, locationId: sb.a.id, qty: '3' } });
});
after(async () => { await app.close(); await admin.end(); });

test('isolation: each tenant lists only its own items and locations', async () => {
  for (const [org, s] of [[a, sa], [b, sb]]) {
    const items = await app.req('GET', '/items', { headers: org.headers });
    assert.deepEqual(items.body.map((i) => i.id), [s.item.id]);
    assert.ok(items.body.every((i) => i.orgId === org.id));
    const locs = await app.req('GET', '/locations', { headers: org.headers });
    assert.deepEqual(locs.body.map((l) => l.id).sort(), [s.a.id, s.b.id].sort());
  }
  assert.equal(sa.item.sku, sb.item.sku);
});

test("isolation: another tenant's ids answer 404 on every route", async () => {
  const h = b.headers;
  const tries = [
    ['GET', `/items/${sa.item.id}`], ['PATCH', `/items/${sa.item.id}`, { name: 'stolen' }], ['DELETE', `/items/${sa.item.id}`],
    ['GET', `/locations/${sa.a.id}`], ['PATCH', `/locations/${sa.a.id}`, { name: 'stolen' }], ['DELETE', `/locations/${sa.a.id}`],
    ['GET', `/items/${sa.item.id}/balances`], ['GET', `/locations/${sa.a.id}/balances`],
    ['POST', '/ledger', { itemId: sa.item.id, locationId: sb.a.id, qty: '1' }],
    ['POST', '/ledger', { itemId: sb.item.id, locationId: sa.a.id, qty: '1' }],
    ['POST', '/transfers', { itemId: sb.item.id, fromLocationId: sb.a.id, toLocationId: sa.b.id, qty: '1' }],
    ['POST', '/count-sheets', { locationId: sa.a.id, lines: [{ itemId: sb.item.id, qtyCounted: '0' }] }],
    ['POST', '/count-sheets', { locationId: sb.a.id, lines: [{ itemId: sa.item.id, qtyCounted: '0' }] }],
  ];
  for (const [method, path, body] of tries) {
    const r = await app.req(method, path, { headers: h, body });
    assert.equal(r.status, 404, `${method} ${path} ${JSON.stringify(body)}: ${r.status}`);
  }
  const still = await app.req('GET', `/items/${sa.item.id}`, { headers: a.headers });
  assert.equal(still.body.name, sa.item.name);
  const bal = await app.req('GET', `/items/${sa.item.id}/balances`, { headers: a.headers });
  assert.equal(bal.body.total, '7');
});

test("isolation: balances and the ledger show only the tenant's own stock", async () => {
  const ra = await app.req('GET', `/locations/${sa.a.id}/balances`, { headers: a.headers });
  const rb = await app.req('GET', `/locations/${sb.a.id}/balances`, { headers: b.headers });
  assert.deepEqual(ra.body.balances.map((x) => [x.itemId, x.qty]), [[sa.item.id, '7']]);
  assert.deepEqual(rb.body.balances.map((x) => [x.itemId, x.qty]), [[sb.item.id, '3']]);
});

test('isolation: the legacy tenant sees its migrated rows, a new tenant none of them', async () => {
  const legacy = await app.req('GET', '/items/itm_1', { headers: { host: 'acme.example.com' } });
  assert.equal(legacy.status, 200);
  assert.equal(legacy.body.sku, 'SKU-00001');
  assert.equal((await app.req('GET', '/items/itm_1', { headers: a.headers })).status, 404);
  const bal = await app.req('GET', '/items/itm_1/balances', { headers: { host: 'acme.example.com' } });
  const { rows: [{ sum }] } = await admin.query(`SELECT sum("qtyCanonical")::text AS sum FROM "InventoryLedger" WHERE "itemId" = 'itm_1'`);
  assert.equal(bal.body.total, sum.replace(/\.?0+$/, ''));
});
