'use strict';
// The routes: CRUD, postings, transfers, balances, count sheets; Decimal and BigInt values exact.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { admin, newOrg, startApp, stocked } = require('./helpers');

let app, org, s;
before(async () => {
  app = await startApp();
  org = await newOrg();
  s = await stocked(app, org);
});
after(async () => { await app.close(); await admin.end(); });
const call = (method, path, body) => app.req(method, path, { headers: org.headers, body });

test('items and locations: create, read, update, delete; duplicates 409; missing fields 400', async () => {
  const item = await call('POST', '/items', { sku: 'CRUD-1', name: 'crud', uom: 'box' });
  assert.equal(item.status, 201);
  assert.equal(item.body.orgId, org.id);
  assert.equal((await call('POST', '/items', { sku: 'CRUD-1', name: 'again' })).status, 409);
  assert.equal((await call('POST', '/items', { name: 'no sku' })).status, 400);
  assert.equal((await call('PATCH', `/items/${item.body.id}`, { name: 'renamed' })).body.name, 'renamed');
  assert.equal((await call('GET', `/items/${item.body.id}`)).body.uom, 'box');
  assert.equal((await call('DELETE', `/items/${item.body.id}`)).status, 204);
  assert.equal((await call('GET', `/items/${item.body.id}`)).status, 404);
  const loc = await call('POST', '/locations', { code: 'CRUD-L', name: 'l' });
  assert.equal(loc.status, 201);
  assert.equal((await call('PATCH', `/locations/${loc.body.id}`, { name: 'L2' })).body.name, 'L2');
  assert.equal((await call('DELETE', `/locations/${loc.body.id}`)).status, 204);
  // An item with ledger entries cannot be deleted (the ledger is history).
  await call('POST', '/ledger', { itemId: s.item.id, locationId: s.a.id, qty: '1' });
  assert.equal((await call('DELETE', `/items/${s.item.id}`)).status, 409);
});

test('ledger and transfer: balances follow; a transfer writes both entries or neither', async () => {
  const { item, a, b } = await stocked(app, org);
  assert.equal((await call('POST', '/ledger', { itemId: item.id, locationId: a.id, qty: '10.5', reason: 'receipt' })).status, 201);
  const t = await call('POST', '/transfers', { itemId: item.id, fromLocationId: a.id, toLocationId: b.id, qty: '4.25' });
  assert.equal(t.status, 201);
  assert.deepEqual(t.body.map((e) => e.qtyCanonical).sort(), ['-4.25', '4.25']);
  assert.equal((await call('POST', '/transfers', { itemId: item.id, fromLocationId: a.id, toLocationId: 'nowhere', qty: '1' })).status, 404);
  assert.equal((await call('POST', '/transfers', { itemId: item.id, fromLocationId: a.id, toLocationId: b.id, qty: '0' })).status, 400);
  assert.equal((await call('POST', '/ledger', { itemId: item.id, locationId: b.id, qty: '0' })).status, 400);  // 22023
  assert.equal((await call('POST', '/ledger', { itemId: item.id, locationId: b.id, qty: 1.5 })).status, 400);  // no floats
  const byItem = await call('GET', `/items/${item.id}/balances`);
  assert.equal(byItem.body.total, '10.5');
  assert.deepEqual(byItem.body.balances.map((x) => [x.locationId, x.qty]).sort(), [[a.id, '6.25'], [b.id, '4.25']].sort());
  const byLoc = await call('GET', `/locations/${b.id}/balances`);
  assert.deepEqual(byLoc.body.balances.map((x) => [x.itemId, x.lotId, x.qty]), [[item.id, null, '4.25']]);
});

test('count sheet: lines become adjustments of counted − on hand, in one transaction', async () => {
  const { item, a } = await stocked(app, org);
  const other = (await call('POST', '/items', { sku: `CNT-${item.id}`, name: 'counted' })).body;
  await call('POST', '/ledger', { itemId: item.id, locationId: a.id, qty: '12', lotId: 'LOT-1' });
  await call('POST', '/ledger', { itemId: item.id, locationId: a.id, qty: '3.5' });
  const r = await call('POST', '/count-sheets', { locationId: a.id, lines: [
    { itemId: item.id, qtyCounted: '14.25' }, { itemId: other.id, qtyCounted: '2' }] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.sheet.status, 'CLOSED');
  assert.equal(r.body.sheet.lines.length, 2);
  assert.deepEqual(r.body.adjustments.map((e) => [e.itemId, e.qtyCanonical]).sort(), [[item.id, '-1.25'], [other.id, '2']].sort());
  assert.equal((await call('GET', `/items/${item.id}/balances`)).body.total, '14.25');
  assert.equal((await call('GET', `/items/${other.id}/balances`)).body.total, '2');
  // A refused sheet leaves nothing behind: an item counted twice (the lines' unique key), an unknown item.
  const rows = async () => (await admin.query(`SELECT (SELECT count(*) FROM "CountSheet" WHERE "orgId" = $1)::int AS sheets,
    (SELECT count(*) FROM "InventoryLedger" WHERE "orgId" = $1)::int AS entries`, [org.id])).rows[0];
  const before = await rows();
  const twice = await call('POST', '/count-sheets', { locationId: a.id, lines: [
    { itemId: other.id, qtyCounted: '5' }, { itemId: other.id, qtyCounted: '6' }] });
  assert.equal(twice.status, 409);
  const unknown = await call('POST', '/count-sheets', { locationId: a.id, lines: [
    { itemId: other.id, qtyCounted: '5' }, { itemId: 'no-such-item', qtyCounted: '6' }] });
  assert.equal(unknown.status, 404);
  assert.deepEqual(await rows(), before);
  assert.equal((await call('GET', `/items/${other.id}/balances`)).body.total, '2');
});

test('Decimal: numeric(65,30) quantities round-trip exactly, in entries and balances', async () => {
  const { item, a } = await stocked(app, org);
  const big = '12345678901234567890123456789.123456789012345678901234567891';
  const tiny = '0.000000000000000000000000000001';
  const e1 = await call('POST', '/ledger', { itemId: item.id, locationId: a.id, qty: big });
  const e2 = await call('POST', '/ledger', { itemId: item.id, locationId: a.id, qty: tiny });
  assert.equal(e1.body.qtyCanonical, big);
  assert.equal(e2.body.qtyCanonical, tiny);
  assert.equal((await call('GET', `/ledger/${e1.body.id}`)).body.qtyCanonical, big);
  const total = '12345678901234567890123456789.123456789012345678901234567892';
  assert.equal((await call('GET', `/items/${item.id}/balances`)).body.total, total);
  const { rows: [db] } = await admin.query(`SELECT sum(qty)::text AS q FROM "InventoryBalance" WHERE "itemId" = $1`, [item.id]);
  assert.equal(db.q.replace(/0+$/, ''), total);
  // A count of the exact total posts nothing; one unit of the 30th decimal less posts exactly that.
  const c = await call('POST', '/count-sheets', { locationId: a.id, lines: [{ itemId: item.id, qtyCounted: big }] });
  assert.deepEqual(c.body.adjustments.map((x) => x.qtyCanonical), [`-${tiny}`]);
});

test('BigInt: bigint values round-trip exactly through the tenant transaction and JSON', async () => {
  const max = 9223372036854775807n, odd = 9007199254740993n;  // 2^63 − 1; 2^53 + 1 (not a JS number)
  const rows = await app.prisma.$withTenant({ orgId: org.id }, (tx) =>
    tx.$queryRaw`SELECT ${max}::bigint AS max, ${odd}::bigint AS odd, ${-max}::bigint AS min, count(*) AS n FROM "Item"`);
  assert.equal(rows[0].max, max);
  assert.equal(rows[0].odd, odd);
  assert.equal(rows[0].min, -max);
  assert.equal(typeof rows[0].n, 'bigint');
  const { replacer } = require('../src/app');
  assert.equal(JSON.stringify(rows[0], replacer), `{"max":"${max}","odd":"${odd}","min":"${-max}","n":"${rows[0].n}"}`);
});
