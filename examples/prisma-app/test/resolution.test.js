'use strict';
// Every step of the resolution order (X-Org-Id, subdomain, API key, default tenant) and every refusal.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { LEGACY, admin, newOrg, startApp } = require('./helpers');

let app, legacyApp, a, b, inactive;
before(async () => {
  app = await startApp();
  legacyApp = await startApp({ user: 'prisma_default' });  // inventory.default_org_id = the legacy tenant
  [a, b, inactive] = [await newOrg(), await newOrg(), await newOrg()];
  await admin.query('SELECT inventory.set_organization_active($1, false)', [inactive.id]);
});
after(async () => { await app.close(); await legacyApp.close(); await admin.end(); });

const who = async (headers, target = app) => {
  const r = await target.req('GET', '/whoami', { headers });
  return r.status === 200 ? (assert.equal(r.body.current, r.body.orgId), r.body.orgId) : r.status;
};

test('resolution: X-Org-Id names the tenant', async () => {
  assert.equal(await who({ 'x-org-id': a.id }), a.id);
  assert.equal(await who({ 'x-org-id': b.id }), b.id);
});

test('resolution: the subdomain of the Host header (any case, with a port)', async () => {
  assert.equal(await who({ host: `${a.subdomain}.example.com` }), a.id);
  assert.equal(await who({ host: `${b.subdomain.toUpperCase()}.Example.COM:8443` }), b.id);
  assert.equal(await who({ host: 'acme.example.com' }), LEGACY);  // the guide's legacy tenant
});

test('resolution: the API key (X-Api-Key or Authorization: Bearer)', async () => {
  assert.equal(await who({ 'x-api-key': a.apiKey }), a.id);
  assert.equal(await who({ authorization: `Bearer ${b.apiKey}` }), b.id);
});

test('resolution: the default tenant last, where the database sets one', async () => {
  assert.equal(await who({}, legacyApp), LEGACY);
  assert.equal(await who({ 'x-api-key': a.apiKey }, legacyApp), a.id);  // credentials still win
  assert.equal(await who({}), 401);  // the application's role: the default was removed (guide step 8)
});

test('resolution: X-Org-Id before the subdomain, the subdomain before the key', async () => {
  assert.equal(await who({ 'x-org-id': a.id, host: `${b.subdomain}.example.com`, 'x-api-key': b.apiKey }), a.id);
  assert.equal(await who({ host: `${a.subdomain}.example.com`, 'x-api-key': b.apiKey }), a.id);
  // No subdomain (an IP, two labels) or one that names no organization: on to the key.
  assert.equal(await who({ host: '127.0.0.1:3000', 'x-api-key': b.apiKey }), b.id);
  assert.equal(await who({ host: 'example.com', 'x-api-key': b.apiKey }), b.id);
  assert.equal(await who({ host: 'www.example.com', 'x-api-key': b.apiKey }), b.id);
});

test('resolution: bad credentials answer 401, never another tenant', async () => {
  assert.equal(await who({ 'x-org-id': '00000000-0000-4000-8000-000000000000' }), 401);
  assert.equal(await who({ 'x-org-id': 'acme' }), 401);
  assert.equal(await who({ 'x-org-id': '00000000-0000-4000-8000-000000000000', 'x-api-key': a.apiKey }), 401);  // no fall-back
  assert.equal(await who({ 'x-api-key': `${a.apiKey.slice(0, -1)}0` === a.apiKey ? `${a.apiKey.slice(0, -1)}1` : `${a.apiKey.slice(0, -1)}0` }), 401);
  assert.equal(await who({ 'x-api-key': 'inv_nope' }), 401);
  assert.equal(await who({ 'x-org-id': inactive.id }), 401);
  assert.equal(await who({ host: `${inactive.subdomain}.example.com`, 'x-api-key': a.apiKey }), 401);
  assert.equal(await who({ 'x-api-key': inactive.apiKey }), 401);
  assert.equal(await who({ 'x-api-key': 'wrong' }, legacyApp), 401);  // a wrong key is not the default
  const r = await app.req('GET', '/items', { headers: { 'x-api-key': 'wrong' } });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'unknown or inactive organization, or bad credentials');
});

test('resolution: a Host header that is not a host name answers 400', async () => {
  assert.equal(await who({ host: 'a b.example.com' }), 400);
});
