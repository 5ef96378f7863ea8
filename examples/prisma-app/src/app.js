'use strict';
// The seed application's HTTP API on the migrated schema. Every tenant route runs in one transaction
// opened by prisma.$withTenant (src/db.js): the tenant is resolved from the request by
// inventory.resolve_org, row-level security does the filtering, and the answer is sent after COMMIT.
const express = require('express');
const { Prisma, sqlstate } = require('./db');

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
const notFound = (what) => new HttpError(404, `${what} not found`);

// What a request presents: X-Org-Id, then the Host header's subdomain, then an API key
// (X-Api-Key or Authorization: Bearer), then the database's default tenant, if an operator set one.
function credentialsOf(req) {
  const auth = req.get('authorization');
  return {
    orgId: req.get('x-org-id') || null,
    host: req.get('host') || null,
    apiKey: req.get('x-api-key') || (auth && /^Bearer\s+(\S+)$/i.exec(auth)?.[1]) || null,
  };
}

// SQLSTATE → HTTP status (docs/APP_DEVELOPER.md, "What the errors mean").
const statusOf = {
  '28000': 401, // unknown or inactive organization, wrong API key, unknown subdomain
  '22P02': 400, // not a UUID (in X-Org-Id: answered 401 below)
  '22023': 400, // an argument the database cannot use (a malformed host, a zero quantity)
  '23514': 409, // not enough stock
  '23503': 409, // referenced by other rows (or a reference to a row this tenant cannot see)
  '23001': 409,
  '23505': 409, // a SKU or code the tenant already uses
  '55000': 409, // the ledger is append-only
  '42501': 500, // a query without a tenant: a bug
};
const prismaStatus = { P2002: 409, P2003: 409, P2025: 404, P2014: 409 };

function sendError(res, err, { resolving = false } = {}) {
  if (err instanceof HttpError) return res.status(err.status).json({ error: err.message });
  const state = sqlstate(err);
  let status = statusOf[state] ?? prismaStatus[err?.code] ?? 500;
  if (resolving && (state === '22P02' || state === '28000')) status = 401;
  if (status >= 500) console.error(err);
  const error = status === 401 ? 'unknown or inactive organization, or bad credentials' : (state ? `SQLSTATE ${state}` : err?.code ?? 'error');
  res.status(status).json({ error, sqlstate: state });
}

// JSON: Decimals as exact plain-notation strings, BigInts as strings (never through a JS number).
function replacer(key, value) {
  const original = this[key];
  if (Prisma.Decimal.isDecimal(original)) return original.toFixed();
  if (typeof value === 'bigint') return value.toString();
  return value;
}

// Exact arithmetic for counted − on hand (decimal.js rounds results to `precision` significant digits).
const Exact = Prisma.Decimal.clone({ precision: 200, toExpPos: 1000, toExpNeg: -1000 });

// Quantities arrive as strings (or integers): never through a JS float.
function quantity(value, field = 'qty') {
  if (typeof value === 'number' && Number.isSafeInteger(value)) value = String(value);
  if (typeof value !== 'string' || !/^-?\d+(\.\d+)?$/.test(value)) throw new HttpError(400, `${field} must be a decimal string`);
  return value;
}
const text = (value, field) => {
  if (typeof value !== 'string' || value === '') throw new HttpError(400, `${field} is required`);
  return value;
};

async function mustFind(tx, model, id, what) {
  const row = await tx[model].findUnique({ where: { id } });
  if (!row) throw notFound(what);  // another tenant's row is invisible: the same 404 as a missing one
  return row;
}

// Balances summed per key (several rows when the DBA spread a hot key over slots).
function balances(tx, { itemId = null, locationId = null }) {
  return tx.$queryRaw`
    SELECT "itemId", "locationId", "lotId", sum(qty) AS qty
      FROM "InventoryBalance"
     WHERE (${itemId}::text IS NULL OR "itemId" = ${itemId}::text)
       AND (${locationId}::text IS NULL OR "locationId" = ${locationId}::text)
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 NULLS FIRST`;
}
async function onHand(tx, itemId, locationId) {
  const [{ qty }] = await tx.$queryRaw`
    SELECT coalesce(sum(qty), 0) AS qty FROM "InventoryBalance" WHERE "itemId" = ${itemId} AND "locationId" = ${locationId}`;
  return new Exact(qty.toFixed());
}

function createApp({ prisma, operatorToken = process.env.OPERATOR_TOKEN } = {}) {
  const app = express();
  app.set('json replacer', replacer);
  app.use(express.json());

  // A tenant route: handler(tx, req, orgId) returns [status, body] or a body (200).
  const route = (handler) => async (req, res) => {
    let resolved = false;
    try {
      const out = await prisma.$withTenant(credentialsOf(req), async (tx, orgId) => {
        resolved = true;
        return handler(tx, req, orgId);
      });
      const [status, body] = Array.isArray(out) && typeof out[0] === 'number' ? out : [200, out];
      status === 204 ? res.status(204).end() : res.status(status).json(body);
    } catch (err) {
      sendError(res, err, { resolving: !resolved });
    }
  };

  app.get('/whoami', route(async (tx, req, orgId) => {
    const [{ current }] = await tx.$queryRaw`SELECT inventory.current_org_id()::text AS current`;
    return { orgId, current };
  }));

  // Items and locations: CRUD. orgId is never written: its default is the transaction's tenant.
  for (const [path, model, what, fields] of [
    ['/items', 'item', 'item', ['sku', 'name', 'uom']],
    ['/locations', 'location', 'location', ['code', 'name']],
  ]) {
    const pick = (body, required) => {
      const data = {};
      for (const f of fields) {
        if (body?.[f] !== undefined) data[f] = text(body[f], f);
        else if (required && f !== 'uom') text(undefined, f);
      }
      return data;
    };
    app.get(path, route((tx) => tx[model].findMany({ orderBy: { id: 'asc' }, take: 1000 })));
    app.post(path, route(async (tx, req) => [201, await tx[model].create({ data: pick(req.body, true) })]));
    app.get(`${path}/:id`, route((tx, req) => mustFind(tx, model, req.params.id, what)));
    app.patch(`${path}/:id`, route(async (tx, req) => {
      await mustFind(tx, model, req.params.id, what);
      return tx[model].update({ where: { id: req.params.id }, data: pick(req.body, false) });
    }));
    app.delete(`${path}/:id`, route(async (tx, req) => {
      await mustFind(tx, model, req.params.id, what);
      await tx[model].delete({ where: { id: req.params.id } });
      return [204];
    }));
  }

  // One ledger entry: a positive quantity receives, a negative one issues. The migrated ledger, like the
  // legacy application, lets a balance go below zero (the 23514 refusal is the built-in schema's,
  // inventory.items.allow_negative); 409 stays mapped for when it is refused.
  app.post('/ledger', route(async (tx, req) => {
    const b = req.body ?? {};
    const itemId = text(b.itemId, 'itemId'), locationId = text(b.locationId, 'locationId');
    const qty = quantity(b.qty);
    await mustFind(tx, 'item', itemId, 'item');
    await mustFind(tx, 'location', locationId, 'location');
    const entry = await tx.inventoryLedger.create({
      data: { itemId, locationId, lotId: b.lotId ?? null, qtyCanonical: qty, reason: b.reason ?? null },
    });
    return [201, entry];
  }));
  app.get('/ledger/:id', route((tx, req) => mustFind(tx, 'inventoryLedger', req.params.id, 'ledger entry')));

  // A transfer: both entries in one INSERT, so both or neither.
  app.post('/transfers', route(async (tx, req) => {
    const b = req.body ?? {};
    const itemId = text(b.itemId, 'itemId'), from = text(b.fromLocationId, 'fromLocationId');
    const to = text(b.toLocationId, 'toLocationId');
    const qty = quantity(b.qty);
    if (qty.startsWith('-') || new Exact(qty).isZero()) throw new HttpError(400, 'qty must be positive');
    if (from === to) throw new HttpError(400, 'the locations must differ');
    await mustFind(tx, 'item', itemId, 'item');
    await mustFind(tx, 'location', from, 'location');
    await mustFind(tx, 'location', to, 'location');
    const lotId = b.lotId ?? null, reason = b.reference ? `transfer ${b.reference}` : 'transfer';
    const entries = await tx.inventoryLedger.createManyAndReturn({
      data: [
        { itemId, locationId: from, lotId, qtyCanonical: `-${qty}`, reason },
        { itemId, locationId: to, lotId, qtyCanonical: qty, reason },
      ],
    });
    return [201, entries];
  }));

  // Balances by item (every location and lot) and by location (every item and lot).
  app.get('/items/:id/balances', route(async (tx, req) => {
    await mustFind(tx, 'item', req.params.id, 'item');
    const rows = await balances(tx, { itemId: req.params.id });
    return { itemId: req.params.id, total: rows.reduce((t, r) => t.plus(r.qty.toFixed()), new Exact(0)).toFixed(), balances: rows };
  }));
  app.get('/locations/:id/balances', route(async (tx, req) => {
    await mustFind(tx, 'location', req.params.id, 'location');
    return { locationId: req.params.id, balances: await balances(tx, { locationId: req.params.id }) };
  }));

  // A count sheet: its lines, and for each an adjustment posting of counted − on hand (over all lots,
  // posted without a lot), all in the request's one transaction.
  app.post('/count-sheets', route(async (tx, req) => {
    const b = req.body ?? {};
    const locationId = text(b.locationId, 'locationId');
    if (!Array.isArray(b.lines) || b.lines.length === 0) throw new HttpError(400, 'lines are required');
    const lines = b.lines.map((l, i) => ({ itemId: text(l?.itemId, `lines[${i}].itemId`), qtyCounted: quantity(l?.qtyCounted, `lines[${i}].qtyCounted`) }));
    await mustFind(tx, 'location', locationId, 'location');
    for (const l of lines) await mustFind(tx, 'item', l.itemId, 'item');
    const sheet = await tx.countSheet.create({ data: { locationId, status: 'OPEN', lines: { create: lines } } });
    const adjustments = [];
    for (const l of lines) {
      const delta = new Exact(l.qtyCounted).minus(await onHand(tx, l.itemId, locationId));
      if (delta.isZero()) continue;
      adjustments.push(await tx.inventoryLedger.create({
        data: { itemId: l.itemId, locationId, qtyCanonical: delta.toFixed(), reason: `count ${sheet.id}` },
      }));
    }
    const closed = await tx.countSheet.update({ where: { id: sheet.id }, data: { status: 'CLOSED' }, include: { lines: true } });
    await tx.auditLog.create({ data: { action: 'count.submit', entity: 'CountSheet', entityId: sheet.id } });
    return [201, { sheet: closed, adjustments }];
  }));

  // Operators, read-only. Reconcile runs are the tenant's own (row-level security); the runs themselves
  // are scheduled with pg_cron (docs/DBA.md), not by this app.
  app.get('/ops/reconcile-runs', route((tx) => tx.$queryRaw`
    SELECT id, started_at, finished_at, ledgers, keys_checked, findings, corrected, flagged, status
      FROM inventory.reconcile_runs ORDER BY id DESC LIMIT 50`));
  // WAL archiving health is the cluster's, not a tenant's: behind the operator token, no tenant.
  app.get('/ops/backup-status', async (req, res) => {
    if (!operatorToken || req.get('authorization') !== `Bearer ${operatorToken}`) {
      return res.status(401).json({ error: 'operator token required' });
    }
    try {
      const [status] = await prisma.$queryRaw`
        SELECT archiving, last_archived_at, age::text AS age, failed_count, last_failed_at, healthy, detail
          FROM inventory.backup_status()`;
      res.json(status);
    } catch (err) { sendError(res, err); }
  });

  app.use((err, req, res, next) => {  // body-parser errors
    if (res.headersSent) return next(err);
    res.status(err.status ?? 500).json({ error: err.message });
  });
  return app;
}

module.exports = { createApp, credentialsOf, replacer };
