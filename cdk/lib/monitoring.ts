/**
 * What the gates decided, and whether the functions are well: alarms on the functions and on
 * the failed-invocations queue, a CloudWatch dashboard built on the decision metrics (EMF, see
 * below), and saved CloudWatch Logs Insights queries over the decision records.
 *
 * The decision metrics, written by the functions as CloudWatch Embedded Metric Format in their
 * decision record's log line (namespace `GREENLIGHT_METRICS_NAMESPACE`, default `Greenlight`):
 *
 * - dimensions `[Function, Stage]` and `[Function, Stage, Service]`: `Succeeded`, `Failed`,
 *   `InProgress` (0 or 1 per invocation), `Rollback` (1 when traffic was moving back),
 *   `TimeToVerdict` (milliseconds from the step's first evaluation to its final verdict);
 * - dimensions `[Function, CheckType]`: `CheckPassed`, `CheckFailed`, `CheckPending`,
 *   `CheckErrors`, `CheckUnobserved` (checks of that type in the invocation).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface MonitoredFunction {
  /** `before-install`, ...: the `Function` dimension of the decision metrics. */
  readonly name: string;
  readonly fn: lambda.IFunction;
  readonly logGroup: logs.ILogGroup;
}

export interface GreenlightMonitoringProps {
  readonly prefix: string;
  readonly functions: MonitoredFunction[];
  readonly failedInvocations: sqs.IQueue;
  readonly metricsNamespace: string;
  /** @default - the alarms have no action */
  readonly alarmTopic?: sns.ITopic;
}

/** The field of a JSON log line that holds the decision record, as a JSON string. */
const RECORD = 'jsonParse(`fields.decision`) as d';

/**
 * The saved Logs Insights queries, by name. Each reads the decision record from the JSON
 * log line (`fields.decision`, docs/configuration.md#the-decision-record).
 */
export const QUERIES: ReadonlyArray<{ readonly name: string; readonly query: string }> = [
  {
    name: 'failed decisions',
    query: [
      'filter ispresent(`fields.decision`)',
      `fields ${RECORD}`,
      'filter d.verdict = "FAILED" or d.verdict = "Failed"',
      'fields d.function as function, d.deployment.stage as stage, coalesce(d.deployment.service, d.deployment.codedeploy.application) as service, d.deployment.codedeploy.deploymentGroup as deploymentGroup, d.reason as reason, d.deployment.key as deployment',
      'display @timestamp, function, service, deploymentGroup, stage, reason, deployment',
      'sort @timestamp desc',
      'limit 200',
    ].join('\n| '),
  },
  {
    name: 'why did a service fail',
    query: '# the ECS service, or the CodeDeploy application: change "checkout" to yours\n' + [
      'filter ispresent(`fields.decision`)',
      `fields ${RECORD}`,
      'filter d.deployment.service = "checkout" or d.deployment.codedeploy.application = "checkout"',
      'filter d.verdict != "SUCCEEDED" and d.verdict != "Succeeded"',
      'unnest d.checks into c',
      'fields d.function as function, d.deployment.stage as stage, d.verdict as verdict, d.invocation as invocation, c.name as checkName, c.type as checkType, c.verdict as checkVerdict, c.effect as effect, c.reason as checkReason',
      'display @timestamp, function, stage, verdict, invocation, checkName, checkType, checkVerdict, effect, checkReason',
      'sort @timestamp desc',
      'limit 200',
    ].join('\n| '),
  },
  {
    name: 'checks that failed by type',
    query: [
      'filter ispresent(`fields.decision`)',
      `fields ${RECORD}`,
      'unnest d.checks into c',
      'filter c.verdict = "fail" or c.verdict = "error"',
      'fields c.type as checkType, c.name as checkName, c.verdict as checkVerdict',
      'stats count(*) as failures by checkType, checkName, checkVerdict',
      'sort failures desc',
      'limit 100',
    ].join('\n| '),
  },
  {
    name: 'errors of the functions',
    query: [
      'filter level = "ERROR" or @message like /Task timed out|Runtime\\.|GreenlightError/',
      'fields coalesce(`fields.message`, errorMessage, @message) as what',
      'display @timestamp, @log, level, what',
      'sort @timestamp desc',
      'limit 200',
    ].join('\n| '),
  },
];

export class GreenlightMonitoring extends Construct {
  public readonly alarms: cloudwatch.Alarm[] = [];
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly queries: logs.CfnQueryDefinition[] = [];

  constructor(scope: Construct, id: string, props: GreenlightMonitoringProps) {
    super(scope, id);
    const { prefix } = props;
    const ns = props.metricsNamespace;
    const period = Duration.minutes(5);

    const alarm = (cid: string, name: string, description: string, metric: cloudwatch.IMetric) => {
      const a = new cloudwatch.Alarm(this, cid, {
        alarmName: `${prefix}-${name}`,
        alarmDescription: description,
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      if (props.alarmTopic) {
        a.addAlarmAction(new actions.SnsAction(props.alarmTopic));
        a.addOkAction(new actions.SnsAction(props.alarmTopic));
      }
      this.alarms.push(a);
      return a;
    };

    const ids = (name: string) => name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
    for (const f of props.functions) {
      const sum = { period, statistic: cloudwatch.Stats.SUM };
      alarm(
        `${ids(f.name)}Errors`,
        `${f.name}-errors`,
        `Greenlight's ${f.name} function ended in an error (a report to CodeDeploy that could not be sent, a crash, a timeout): read its log`,
        f.fn.metricErrors(sum),
      );
      alarm(
        `${ids(f.name)}Throttles`,
        `${f.name}-throttles`,
        `Greenlight's ${f.name} function was throttled: a hook may have answered late, or not at all`,
        f.fn.metricThrottles(sum),
      );
      alarm(
        `${ids(f.name)}AsyncEventsDropped`,
        `${f.name}-async-events-dropped`,
        `An asynchronous invocation of Greenlight's ${f.name} function was dropped: a CodeDeploy hook may wait its full hour unreported`,
        f.fn.metric('AsyncEventsDropped', sum),
      );
    }
    alarm(
      'FailedInvocationsAlarm',
      'failed-invocations',
      "An asynchronous invocation of a Greenlight function failed after Lambda's retries: its event is in the queue; the CodeDeploy hook it served may be unreported",
      props.failedInvocations.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
    );

    // The decision metrics, summed over every stage and service (SEARCH finds the series).
    const search = (dims: string, metric: string, stat: string, label: string, extra = '') =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{${ns},${dims}} MetricName="${metric}"${extra}', '${stat}', ${period.toSeconds()})`,
        usingMetrics: {},
        label,
        period,
      });
    const total = (metric: string, label: string, color?: string) =>
      new cloudwatch.MathExpression({
        expression: `SUM(SEARCH('{${ns},Function,Stage} MetricName="${metric}"', 'Sum', ${period.toSeconds()}))`,
        usingMetrics: {},
        label,
        period,
        color,
      });
    const logGroupNames = props.functions.map((f) => f.logGroup.logGroupName);
    const lambdaMetric = (
      make: (fn: lambda.IFunction, o: cloudwatch.MetricOptions) => cloudwatch.Metric,
      statistic: string,
    ) => props.functions.map((f) => make(f.fn, { period, statistic, label: f.name }));

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${prefix}-gates`,
      defaultInterval: Duration.days(7),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# Greenlight (${prefix}): what the gates decided\nDecision metrics in namespace \`${ns}\` (one datapoint per hook invocation); the functions' own health below. Saved Logs Insights queries: \`${prefix}/…\` (failed decisions, why did a service fail, checks that failed by type).`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Verdicts (all functions, stages and services)',
        left: [
          total('Succeeded', 'SUCCEEDED', cloudwatch.Color.GREEN),
          total('Failed', 'FAILED', cloudwatch.Color.RED),
          total('InProgress', 'IN_PROGRESS answers', cloudwatch.Color.ORANGE),
        ],
        stacked: true,
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Failures by function and stage',
        left: [search('Function,Stage', 'Failed', 'Sum', '')],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Failed checks by check type',
        left: [search('Function,CheckType', 'CheckFailed', 'Sum', '')],
        stacked: true,
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Checks that could not run (errors) or observe (AWS throttled) by type',
        left: [
          search('Function,CheckType', 'CheckErrors', 'Sum', ''),
          search('Function,CheckType', 'CheckUnobserved', 'Sum', ''),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Failures by service',
        left: [search('Function,Stage,Service', 'Failed', 'Sum', '')],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Time to verdict (ms, p50 and p90 by function and stage)',
        left: [
          search('Function,Stage', 'TimeToVerdict', 'p50', ''),
          search('Function,Stage', 'TimeToVerdict', 'p90', ''),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'IN_PROGRESS answers by function and stage',
        left: [search('Function,Stage', 'InProgress', 'Sum', '')],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Rollbacks seen (traffic moving back)',
        left: [search('Function,Stage,Service', 'Rollback', 'Sum', '')],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: lambdaMetric((fn, o) => fn.metricErrors(o), cloudwatch.Stats.SUM),
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function throttles',
        left: lambdaMetric((fn, o) => fn.metricThrottles(o), cloudwatch.Stats.SUM),
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p90, ms)',
        left: lambdaMetric((fn, o) => fn.metricDuration(o), cloudwatch.Stats.p(90)),
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Asynchronous events dropped, and failed invocations queued',
        left: lambdaMetric((fn, o) => fn.metric('AsyncEventsDropped', o), cloudwatch.Stats.SUM),
        right: [
          props.failedInvocations.metricApproximateNumberOfMessagesVisible({
            period,
            statistic: cloudwatch.Stats.MAXIMUM,
            label: 'queued',
          }),
        ],
        width: 6,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 3 }),
      new cloudwatch.LogQueryWidget({
        title: 'Latest failed decisions',
        logGroupNames,
        queryString: QUERIES[0].query,
        width: 24,
        height: 8,
      }),
    );

    for (const q of QUERIES) {
      const cid = q.name.replace(/(^|\s)([a-z])/g, (_, __, c: string) => c.toUpperCase()).replace(/\W/g, '');
      this.queries.push(
        new logs.CfnQueryDefinition(this, `${cid}Query`, {
          name: `${prefix}/${q.name}`,
          queryString: q.query,
          logGroupNames,
        }),
      );
    }
  }
}
