// Alerts on the structured log records the engine writes (docs/CONTRACTS.md "Structured records"):
// `rotation.transition {json}` per transition and `rotation.sweep {json}` per sweep, found in the
// Application Insights `traces` table. The queries are documented in docs/DEPLOY.md.
param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string

@description('Existing action group to notify; empty = none.')
param actionGroupResourceId string = ''

@description('E-mail address for a new action group; empty = none.')
param alertEmailAddress string = ''

@secure()
@description('JSON array of HTTPS webhook URLs (Teams Workflows, Slack, any receiver of the common alert schema) for the new action group; empty = none.')
param alertWebhookUrls string = ''

@description('Window in which at least one sweep must have run; longer than the timer period.')
param sweepHeartbeatWindow string = 'PT1H'

// 'rotation.transition ' is 20 characters long; the JSON record follows it.
var rotationFailedQuery = '''
traces
| where message startswith "rotation.transition"
| extend r = parse_json(substring(message, 20))
| where tostring(r.outcome) == "failed"
| project timestamp, target = tostring(r.target), step = tostring(r.step), error = tostring(r.error)
'''

// 'rotation.sweep ' is 15 characters long; `overdue` counts targets with no successful rotation
// within their rotation period plus the engine's grace.
var targetOverdueQuery = '''
traces
| where message startswith "rotation.sweep "
| extend s = parse_json(substring(message, 15))
| where toint(s.overdue) > 0
| project timestamp, overdue = toint(s.overdue)
'''

var sweepMissingQuery = '''
traces
| where message startswith "rotation.sweep "
| project timestamp
'''

var webhookUrls = empty(alertWebhookUrls) ? [] : json(alertWebhookUrls)

// One action group for the receivers given here: e-mail and/or webhooks (Teams, Slack). Each webhook
// receives the common alert schema (docs/DEPLOY.md "Notifications").
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if ((!empty(alertEmailAddress)) || (!empty(webhookUrls))) {
  name: 'ag-keyrotation-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'keyrotation'
    enabled: true
    emailReceivers: empty(alertEmailAddress) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: [for (url, index) in webhookUrls: {
      name: 'webhook-${index}'
      serviceUri: url
      useCommonAlertSchema: true
      useAadAuth: false
    }]
  }
}

var actionGroupIds = concat(empty(actionGroupResourceId) ? [] : [
  actionGroupResourceId
], (empty(alertEmailAddress) && empty(webhookUrls)) ? [] : [
  actionGroup.id
])

resource rotationFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-rotation-failed-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Key rotation failed'
    description: 'A rotation step ended with outcome "failed" (one alert per target). See docs/DEPLOY.md.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: rotationFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'target'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource targetOverdue 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-rotation-overdue-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Key rotation overdue'
    description: 'A sweep reported targets with no successful rotation within period + grace. See docs/DEPLOY.md.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: targetOverdueQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource sweepMissing 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-rotation-sweep-missing-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Key rotation sweep not running'
    description: 'No rotation sweep ran in the window: the timer, the host or its storage is broken. See docs/DEPLOY.md.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: sweepHeartbeatWindow
    criteria: {
      allOf: [
        {
          query: sweepMissingQuery
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

output alertRuleIds array = [
  rotationFailed.id
  targetOverdue.id
  sweepMissing.id
]
