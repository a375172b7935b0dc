#!/usr/bin/env node
/**
 * Writes the packaged release template: `npm run release-template -- DIR` synthesises the
 * ReleaseStack (the hooks stack with template parameters, code from zips in S3) with the
 * cdk-nag checks and writes `DIR/greenlight.template.json`. `make release` runs it next to
 * the zips it builds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as cdkJson from '../cdk.json';
import { ReleaseStack, workspaceVersion } from '../lib';

const target = path.resolve(process.argv[2] ?? path.join('..', 'dist'));
const version = workspaceVersion();
const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenlight-release-'));
try {
  const app = new App({ outdir, context: { ...cdkJson.context } });
  const stack = new ReleaseStack(app, 'greenlight', {
    description: `Greenlight ${version}: deployment hooks for Amazon ECS blue/green and AWS CodeDeploy`,
    version,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  const artifact = assembly.getStackByName(stack.stackName);
  fs.mkdirSync(target, { recursive: true });
  const file = path.join(target, 'greenlight.template.json');
  fs.writeFileSync(file, `${JSON.stringify(artifact.template, null, 1)}\n`);
  console.log(`${file} (Greenlight ${version})`);
} finally {
  fs.rmSync(outdir, { recursive: true, force: true });
}
