/** Shared by the tests: an app like `cdk synth`'s (same feature flags), and policy readers. */
import { App, type Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import * as cdkJson from '../cdk.json';

/** The app's feature flags from cdk.json; bundling skipped, so that nothing is compiled. */
export function testApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [], ...context } });
}

/** A CloudFormation value as one string: `arn:<AWS::Partition>:...`, `<Logical.Arn>`. */
export function flat(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'object' && x !== null) {
    const o = x as Record<string, unknown>;
    if (o['Fn::Join']) {
      const [sep, items] = o['Fn::Join'] as [string, unknown[]];
      return items.map(flat).join(sep);
    }
    if (o.Ref) return `<${o.Ref as string}>`;
    if (o['Fn::GetAtt']) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
  }
  return JSON.stringify(x);
}

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string[];
  Resource: string[];
  Condition?: unknown;
}

const list = (x: unknown): unknown[] => (Array.isArray(x) ? x : [x]);

function normalise(s: Record<string, unknown>): Statement {
  const out: Statement = {
    Effect: s.Effect as string,
    Action: list(s.Action).map(String).sort(),
    Resource: list(s.Resource).map(flat).sort(),
  };
  if (s.Sid) out.Sid = s.Sid as string;
  if (s.Condition) out.Condition = s.Condition;
  return out;
}

/** The statements of one policy resource, by logical id. */
export function statementsOf(template: Template, logicalId: string): Statement[] {
  const resource = template.toJSON().Resources[logicalId];
  return (resource.Properties.PolicyDocument.Statement as Record<string, unknown>[]).map(normalise);
}

/** Every Allow statement in a template: managed policies, policies and roles' inline policies. */
export function allStatements(template: Template): Array<Statement & { where: string }> {
  const out: Array<Statement & { where: string }> = [];
  for (const [id, r] of Object.entries<Record<string, any>>(template.toJSON().Resources)) {
    const docs: unknown[] = [];
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') docs.push(r.Properties.PolicyDocument);
    if (r.Type === 'AWS::IAM::Role') for (const p of r.Properties.Policies ?? []) docs.push(p.PolicyDocument);
    for (const d of docs) {
      for (const s of (d as { Statement: Record<string, unknown>[] }).Statement) {
        out.push({ ...normalise(s), where: id });
      }
    }
  }
  return out;
}

/** The logical id of the only resource of a type whose id starts with `prefix`. */
export function logicalIdOf(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} named ${prefix}*, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

/** cdk-nag's AWS Solutions findings that are not acknowledged: `rule severity path`. */
export function nagFindings(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks().validateScope(scope);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} ${v.severity} ${r.constructPath}`),
  );
}

/** Every acknowledgment recorded in the tree, with its reason. */
export function acknowledgments(scope: IConstruct): Array<{ path: string; id: string; reason: string }> {
  const out: Array<{ path: string; id: string; reason: string }> = [];
  for (const c of scope.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY && entry.data) {
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
          out.push({ path: c.node.path, id, reason });
        }
      }
    }
  }
  return out;
}

/** Read-only by its name: Describe*, List*, Get*, BatchGet*. */
export function isReadOnly(action: string): boolean {
  return /^[a-z0-9-]+:(Describe|List|Get|BatchGet)[A-Za-z]*$/.test(action);
}

export function templateOf(stack: Stack): Template {
  return Template.fromStack(stack);
}
