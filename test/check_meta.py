#!/usr/bin/env python3
"""Check META.json against the PGXN Meta Spec 1.0.0 essentials and aura.control."""
import json, re, sys

meta = json.load(open(sys.argv[1]))
control = open(sys.argv[2]).read()
errors = []
for field in ('name', 'version', 'abstract', 'maintainer', 'license', 'provides', 'meta-spec'):
    if field not in meta:
        errors.append(f'missing required field {field}')
semver = re.compile(r'^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$')
if not semver.match(meta.get('version', '')):
    errors.append('version is not semantic (x.y.z)')
if meta.get('meta-spec', {}).get('version') != '1.0.0':
    errors.append('meta-spec.version must be 1.0.0')
for name, p in meta.get('provides', {}).items():
    for f in ('file', 'version'):
        if f not in p:
            errors.append(f'provides.{name} lacks {f}')
    if not semver.match(p.get('version', '')):
        errors.append(f'provides.{name}.version is not semantic')
req = meta.get('prereqs', {}).get('runtime', {}).get('requires', {})
if 'PostgreSQL' not in req or 'pgcrypto' not in req:
    errors.append('prereqs.runtime.requires must name PostgreSQL and pgcrypto')
default = re.search(r"default_version\s*=\s*'([^']+)'", control).group(1)
if not meta['version'].startswith(default + '.') and meta['version'] != default:
    errors.append(f'META version {meta["version"]} does not match aura.control {default}')
if errors:
    print('META.json: ' + '; '.join(errors))
    sys.exit(1)
print('META.json: valid')
