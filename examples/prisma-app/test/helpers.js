'use strict';
// Shared by the tests: an admin connection (the superuser, for fixtures only), organizations, and the
// app started in-process on a free port with its own pool, connected as the application's role.
const http = require('node:http');
const crypto = require('node:crypto');
const pg = require('pg');
const { createClient, createPool } = require('../src/db');
const { createApp } = require('../src/app');

const LEGACY = '8c1f3e2a-5b7d-4c9e-a1f0-3d2e4b6a8c10';
const admin = new pg.Pool({ user: process.env.ADMIN_DB_USER ?? 'postgres', max: 2 });
const unique = (prefix) => `${prefix}${crypto.randomBytes(4).toString('hex')}`;

async function newOrg(name = unique('org-')) {
  const subdomain = unique('t');
  const { rows: [r] } = await admin.query('SELECT org_id, api_key FROM inventory.create_organization($1, $2)', [name, subdomain]);
  return { id: r.org_id, apiKey: r.api_key, subdomain, headers: { 'x-org-id': r.org_id } };
}

function request(port, method, path, { headers = {}, body } = {}, agent) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port, method, path, agent,
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data ? JSON.parse(data) : undefined }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function startApp({ user = process.env.APP_DB_USER ?? 'prisma', max = 10, operatorToken } = {}) {
  const pool = createPool({ user, max });
  const { prisma } = createClient({ pool });
  const server = createApp({ prisma, operatorToken }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = server.address().port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  return {
    pool, prisma, port,
    req: (method, path, opts) => request(port, method, path, opts, agent),
    async close() {
      agent.destroy();
      await new Promise((r) => server.close(r));
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

// The balances (summed over slots) and the ledger's sums, per key, as the superuser sees them: every
// key where they differ.
async function balanceMismatches() {
  const { rows } = await admin.query(`
    SELECT coalesce(l."orgId", b."orgId") AS org, coalesce(l."itemId", b."itemId") AS item,
           coalesce(l."locationId", b."locationId") AS loc, l.qty AS ledger, b.qty AS balance
      FROM (SELECT "orgId", "itemId", "locationId", "lotId", sum("qtyCanonical") AS qty
              FROM "InventoryLedger" GROUP BY 1, 2, 3, 4) l
      FULL JOIN (SELECT "orgId", "itemId", "locationId", "lotId", sum(qty) AS qty
                   FROM "InventoryBalance" GROUP BY 1, 2, 3, 4) b
        ON (b."orgId", b."itemId", b."locationId") = (l."orgId", l."itemId", l."locationId")
       AND b."lotId" IS NOT DISTINCT FROM l."lotId"
     WHERE b.qty IS DISTINCT FROM l.qty`);
  return rows;
}

// An organization with one item and two locations, created over HTTP.
async function stocked(app, org, tag = unique('')) {
  const item = await app.req('POST', '/items', { headers: org.headers, body: { sku: `SKU-${tag}`, name: `item ${tag}` } });
  const a = await app.req('POST', '/locations', { headers: org.headers, body: { code: `A-${tag}`, name: 'A' } });
  const b = await app.req('POST', '/locations', { headers: org.headers, body: { code: `B-${tag}`, name: 'B' } });
  for (const r of [item, a, b]) if (r.status !== 201) throw new Error(`setup: ${r.status} ${JSON.stringify(r.body)}`);
  return { item: item.body, a: a.body, b: b.body };
}

module.exports = { LEGACY, admin, newOrg, startApp, balanceMismatches, stocked, unique };
