'use strict';
// node src/server.js — listens on PORT (default 3000); the database from PG* variables, as the role
// the application connects as (never a superuser or a BYPASSRLS role: row-level security would not apply).
const { createClient } = require('./db');
const { createApp } = require('./app');

const { prisma, pool } = createClient({ pool: undefined });
const server = createApp({ prisma }).listen(Number(process.env.PORT ?? 3000), () => {
  console.log(`listening on ${server.address().port}`);
});
const stop = () => server.close(async () => { await prisma.$disconnect(); await pool.end(); process.exit(0); });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
