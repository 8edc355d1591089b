// node merge-branch.js MAIN BRANCH TAG NEWTAG OUT [--rechain]
//
// What a team does by hand when it merges a branch that ran
// "drizzle-kit generate" from the same parent as main: copy main's folder,
// take the branch's migration TAG, rename it (SQL file and snapshot) to
// NEWTAG, the next index after main's last, and append its journal entry
// (keeping the branch's "when").  The snapshot's prevId is left pointing at
// the old parent, as in the incident -- unless --rechain, which points it
// at main's last snapshot (a team that answered drizzle-kit's collision
// error, and nothing else).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [main, branch, tag, newTag, out, flag] = process.argv.slice(2);
const prefix = (t) => t.slice(0, t.indexOf('_'));
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

fs.rmSync(out, { recursive: true, force: true });
fs.cpSync(main, out, { recursive: true });

const journal = readJson(path.join(out, 'meta/_journal.json'));
const branchEntry = readJson(path.join(branch, 'meta/_journal.json')).entries.find((e) => e.tag === tag);
const last = journal.entries[journal.entries.length - 1];

fs.copyFileSync(path.join(branch, `${tag}.sql`), path.join(out, `${newTag}.sql`));
const snapshot = readJson(path.join(branch, `meta/${prefix(tag)}_snapshot.json`));
if (flag === '--rechain') {
  snapshot.prevId = readJson(path.join(out, `meta/${prefix(last.tag)}_snapshot.json`)).id;
}
fs.writeFileSync(path.join(out, `meta/${prefix(newTag)}_snapshot.json`), JSON.stringify(snapshot, null, 2));

journal.entries.push({ ...branchEntry, idx: last.idx + 1, tag: newTag });
fs.writeFileSync(path.join(out, 'meta/_journal.json'), JSON.stringify(journal, null, 2));
