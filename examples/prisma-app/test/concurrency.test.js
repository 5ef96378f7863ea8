'use strict';
// Many requests at once: postings whose balances equal the ledger's sums after, and a pool of 2
// connections serving 200 requests that alternate tenants without one leaking into another.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { admin, newOrg, startApp, stocked, balanceMismatches } = require('./helpers');

let app, small, a, b;
before(async () => {
  app = await startApp({ max: 8 });
  small = await startApp({ max: 2 });
  [a, b] = [await newOrg(), await newOrg()];
});
after(async () => { await app.close(); await small.close(); await admin.end(); });

test('concurrency: 300 postings from concurrent requests, balances equal to the ledger sums', async () => {
  const sa = await stocked(app, a), sb = await stocked(app, b);
  const jobs = [];
  const expected = new Map();
  for (let i = 0; i < 300; i++) {
    const [org, s] = i % 2 ? [a, sa] : [b, sb];
    const loc = i % 3 ? s.a : s.b;
    const qty = `${(i % 7) + 1}.${String(i).padStart(3, '0')}`;
    const key = `${org.id}/${loc.id}`;
    expected.set(key, (expected.get(key) ?? 0n) + BigInt(qty.replace('.', '')));
    const body = i % 10 === 9
      ? { itemId: s.item.id, fromLocationId: s.a.id, toLocationId: s.b.id, qty: '0.001' }  // a move: the total stays
      : { itemId: s.item.id, locationId: loc.id, qty };
    jobs.push(app.req('POST', i % 10 === 9 ? '/transfers' : '/ledger', { headers: org.headers, body })
      .then((r) => ({ r, transfer: i % 10 === 9, key, qty })));
  }
  const results = await Promise.all(jobs);
  for (const { r, transfer, key, qty } of results) {
    assert.equal(r.status, 201, JSON.stringify(r.body));
    if (transfer) expected.set(key, expected.get(key) - BigInt(qty.replace('.', '')));  // not posted as such
  }
  assert.deepEqual(await balanceMismatches(), []);
  // What the ledger says each tenant holds equals what the requests posted.
  for (const [org, s] of [[a, sa], [b, sb]]) {
    const r = await app.req('GET', `/items/${s.item.id}/balances`, { headers: org.headers });
    const posted = [...expected].filter(([k]) => k.startsWith(org.id)).reduce((t, [, v]) => t + v, 0n);
    const whole = String(posted).padStart(4, '0');
    const want = `${whole.slice(0, -3)}.${whole.slice(-3)}`.replace(/\.?0+$/, '');
    assert.equal(r.body.total, want);
  }
});

test('pool of 2: 200 concurrent requests alternating tenants, no tenant leaks', async () => {
  const sa = await stocked(small, a, 'pool'), sb = await stocked(small, b, 'pool');
  const jobs = [];
  for (let i = 0; i < 200; i++) {
    const [org, mine] = i % 2 ? [a, sa] : [b, sb];
    const path = ['/whoami', '/items', '/locations', `/items/${mine.item.id}/balances`][i % 4];
    jobs.push(small.req('GET', path, { headers: org.headers }).then((r) => ({ r, org, path })));
  }
  const results = await Promise.all(jobs);
  for (const { r, org, path } of results) {
    assert.equal(r.status, 200, `${path}: ${r.status} ${JSON.stringify(r.body)}`);
    if (path === '/whoami') assert.deepEqual(r.body, { orgId: org.id, current: org.id });
    else if (Array.isArray(r.body)) assert.ok(r.body.length > 0 && r.body.every((x) => x.orgId === org.id), path);
    else assert.equal(r.body.itemId, (org === a ? sa : sb).item.id);
  }
  assert.ok(small.pool.totalCount <= 2, `the pool opened ${small.pool.totalCount} connections`);
  // Outside a request, the pooled connections carry no tenant: they see nothing and cannot write.
  const clients = [await small.pool.connect(), await small.pool.connect()];
  try {
    for (const c of clients) {
      const { rows: [r] } = await c.query(`SELECT coalesce(current_setting('app.org_id', true), '') AS setting,
        inventory.current_org_id() AS org, (SELECT count(*)::int FROM "Item") AS items`);
      assert.deepEqual(r, { setting: '', org: null, items: 0 });
    }
  } finally { clients.forEach((c) => c.release()); }
  const { rows: [{ n }] } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'prisma' AND application_name = ''`);
  assert.ok(n >= 2);  // this pool's two, and the other test app's
});
