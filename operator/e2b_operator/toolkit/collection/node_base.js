#!/usr/bin/env node
// Node.js base template: echo a message and/or compute statistics over a data list.
// Input (JSON, argv[2] or stdin; defaults from the template's custom_config in
// $E2B_TEMPLATE_CONFIG, /app/template.json): {"message": string, "data": [number, ...]}.
// Reports the versions of the common packages the template installs (lodash, axios, ...).
// Output: one JSON document; errors print {"error": ...} and exit 1.
'use strict';

const fs = require('fs');

function readConfig() {
  let raw = process.argv.length > 2 ? process.argv[2] : '';
  if (process.argv.length <= 2 && !process.stdin.isTTY) {
    raw = fs.readFileSync(0, 'utf8');
  }
  const config = raw.trim() ? JSON.parse(raw) : {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError('config must be a JSON object');
  }
  return config;
}

const COMMON = ['lodash', 'axios', 'dayjs', 'zod'];

function templateDefaults() {
  const path = process.env.E2B_TEMPLATE_CONFIG || '/app/template.json';
  if (!fs.existsSync(path)) return {};
  return JSON.parse(fs.readFileSync(path, 'utf8')).custom_config || {};
}

function packageVersions() {
  const out = {};
  for (const name of COMMON) {
    try {
      out[name] = require(`${name}/package.json`).version;
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND' && err.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
    }
  }
  return out;
}

function describe(data) {
  if (!Array.isArray(data) || !data.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new TypeError('data must be a list of numbers');
  }
  if (data.length === 0) return { count: 0 };
  const sorted = [...data].sort((a, b) => a - b);
  const n = data.length;
  const sum = data.reduce((a, b) => a + b, 0);
  const mean = sum / n;
  const mid = Math.floor(n / 2);
  const median = n % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const variance = n > 1 ? data.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : 0;
  return {
    count: n,
    sum,
    min: sorted[0],
    max: sorted[n - 1],
    mean,
    median,
    stdev: Math.sqrt(variance),
  };
}

function run(config) {
  const result = {
    template: 'node_base',
    status: 'ok',
    runtime: `node ${process.versions.node}`,
    received: Object.keys(config).sort(),
    packages: packageVersions(),
  };
  if ('message' in config) {
    const message = String(config.message);
    result.message = message;
    result.reply = `Received: ${message}`;
    result.length = message.length;
  }
  if ('data' in config) result.stats = describe(config.data);
  return result;
}

function main() {
  try {
    process.stdout.write(JSON.stringify(run({ ...templateDefaults(), ...readConfig() })) + '\n');
    return 0;
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: err.message, type: err.name }) + '\n');
    return 1;
  }
}

process.exitCode = main();
