'use strict';
// The Prisma client on a pg pool, and the tenancy extension: $withTenant(credentials, work) runs `work`
// inside one interactive transaction whose first statement is inventory.resolve_org(…). Every query of a
// request goes through the transaction client it is given, so the tenant (a transaction-local setting)
// is gone at COMMIT or ROLLBACK and a pooled connection never carries it into the next request.
const pg = require('pg');
const { PrismaPg } = require('@prisma/adapter-pg');
const { PrismaClient, Prisma } = require('../generated/client');

// Connection settings come from the usual PG* environment variables (PGHOST, PGPORT, PGDATABASE, …).
function createPool({ user = process.env.PGUSER, database = process.env.PGDATABASE, max = 10 } = {}) {
  return new pg.Pool({ user, database, max });
}

const tenancy = ({ maxWait = 60_000, timeout = 60_000 } = {}) => Prisma.defineExtension((client) => client.$extends({
  name: 'tenancy',
  client: {
    /**
     * credentials: { orgId, host, apiKey } from the request (any may be undefined). work(tx, orgId) makes
     * every query of the request through tx. Resolution order (in the database): orgId, the subdomain of
     * host, apiKey, inventory.default_org_id; nothing valid: SQLSTATE 28000.
     */
    $withTenant(credentials, work) {
      const base = Prisma.getExtensionContext(this);
      const { orgId = null, host = null, apiKey = null } = credentials;
      return base.$transaction(async (tx) => {
        const [{ org }] = await tx.$queryRaw`
          SELECT inventory.resolve_org(${orgId}::uuid, ${host}::text, ${apiKey}::text)::text AS org`;
        return work(tx, org);
      }, { maxWait, timeout });
    },
  },
}));

function createClient({ pool, maxWait, timeout } = {}) {
  pool = pool ?? createPool();
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) }).$extends(tenancy({ maxWait, timeout }));
  return { prisma, pool };
}

// The SQLSTATE behind a Prisma error (raw queries and driver adapter errors carry PostgreSQL's code).
function sqlstate(err, depth = 0) {
  if (!err || typeof err !== 'object' || depth > 6) return undefined;
  for (const k of ['originalCode', 'code']) {
    const v = err[k];
    if (typeof v === 'string' && /^[0-9A-Z]{5}$/.test(v) && !/^P\d{4}$/.test(v)) return v;
  }
  for (const k of ['cause', 'meta', 'driverAdapterError']) {
    const v = sqlstate(err[k], depth + 1);
    if (v) return v;
  }
  return undefined;
}

module.exports = { createClient, createPool, sqlstate, Prisma };
