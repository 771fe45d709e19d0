// Evidence for operators and auditors: an Azure Monitor workbook over the engine's own records
// (docs/CONTRACTS.md "Structured records": `rotation.transition {json}` and `rotation.sweep {json}` in the
// Application Insights `traces` table). tests/infra/test_workbook.py runs every query below over the
// records the engine really writes. docs/DEPLOY.md "Evidence workbook" explains each panel.
param location string
param tags object = {}
param applicationInsightsId string

@description('Workbook title in the portal.')
param displayName string = 'Key rotation evidence'

// Key age per target: how long the active key has been in use. A swap (verify_and_swap succeeded)
// starts a new key's life; an adoption only tells that the key was already there.
var keyAgeQuery = '''
traces
| where message startswith "rotation.transition "
| extend r = parse_json(substring(message, 20))
| extend target = tostring(r.target), step = tostring(r.step), outcome = tostring(r.outcome)
| where outcome == "succeeded" and step in ("adopt", "verify_and_swap")
| summarize arg_max(timestamp, step) by target
| project target, activeSince = timestamp, keyAgeDays = round((now() - timestamp) / 1d, 1), since = iff(step == "adopt", "adopted (key is older)", "rotated")
| order by keyAgeDays desc
'''

// Rotations per day: cycles that ended (the old key regenerated) each day.
var rotationsPerDayQuery = '''
traces
| where message startswith "rotation.transition "
| extend r = parse_json(substring(message, 20))
| where tostring(r.step) == "retire_old" and tostring(r.outcome) == "succeeded"
| summarize rotations = dcount(tostring(r.cycle)) by day = bin(timestamp, 1d)
| order by day asc
'''

// Failures: every failed step, grouped by target, step and error (class and reason, never a value).
var failuresQuery = '''
traces
| where message startswith "rotation.transition "
| extend r = parse_json(substring(message, 20))
| where tostring(r.outcome) == "failed"
| summarize failures = count(), lastFailure = max(timestamp) by target = tostring(r.target), step = tostring(r.step), error = tostring(r.error)
| order by lastFailure desc
'''

// Overdue targets: each sweep counts the targets past their period plus grace (the alert's source).
var overdueQuery = '''
traces
| where message startswith "rotation.sweep "
| extend s = parse_json(substring(message, 15))
| summarize overdue = max(toint(s.overdue)) by hour = bin(timestamp, 1h)
| order by hour asc
'''

// Drains: from the swap to the old key's regeneration, per cycle, and how each one ended.
var drainsQuery = '''
traces
| where message startswith "rotation.transition "
| extend r = parse_json(substring(message, 20))
| extend cycle = tostring(r.cycle), step = tostring(r.step), outcome = tostring(r.outcome), trigger = tostring(r.trigger)
| where isnotempty(cycle)
| summarize target = take_any(tostring(r.target)), swapped = minif(timestamp, step == "verify_and_swap" and outcome == "succeeded"), retired = minif(timestamp, step == "retire_old" and outcome == "succeeded"), retiredBy = take_anyif(trigger, step == "retire_old" and outcome == "succeeded"), shortened = maxif(timestamp, step == "request" and outcome == "succeeded"), retireFailures = countif(step == "retire_old" and outcome == "failed") by cycle
| where isnotnull(swapped)
| extend drainHours = round((iff(isnull(retired), now(), retired) - swapped) / 1h, 2)
| extend ended = case(isnull(retired) and retireFailures > 0, "retire failing", isnull(retired), "still draining", isnotnull(shortened) and shortened >= swapped, "shortened by an emergency request", "ran its full drain")
| project cycle, target, swapped, retired, drainHours, ended, retiredBy
| order by swapped desc
'''

var ninetyDays = 7776000000 // ms; key age and overdue look further back than the time range picker

var panels = [
  {
    name: 'key-age'
    title: 'Key age per target (days since the active key was swapped in)'
    query: keyAgeQuery
    visualization: 'table'
    fixedRange: true
  }
  {
    name: 'rotations-per-day'
    title: 'Rotations completed per day'
    query: rotationsPerDayQuery
    visualization: 'barchart'
    fixedRange: false
  }
  {
    name: 'failures'
    title: 'Failed steps'
    query: failuresQuery
    visualization: 'table'
    fixedRange: false
  }
  {
    name: 'overdue'
    title: 'Overdue targets (as counted by each sweep)'
    query: overdueQuery
    visualization: 'timechart'
    fixedRange: true
  }
  {
    name: 'drains'
    title: 'Drains: length and how they ended'
    query: drainsQuery
    visualization: 'table'
    fixedRange: false
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat([
    {
      type: 1
      name: 'intro'
      content: {
        json: '## Key rotation evidence\nFrom the rotation engine\'s own records (`rotation.transition` and `rotation.sweep` in `traces`). Key values never appear in them. See docs/DEPLOY.md.'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        parameters: [
          {
            id: 'time-range'
            version: 'KqlParameterItem/1.0'
            name: 'TimeRange'
            label: 'Time range'
            type: 4
            isRequired: true
            value: {
              durationMs: 2592000000
            }
            typeSettings: {
              selectableValues: [
                {
                  durationMs: 86400000
                }
                {
                  durationMs: 604800000
                }
                {
                  durationMs: 2592000000
                }
                {
                  durationMs: ninetyDays
                }
              ]
            }
          }
        ]
        style: 'pills'
        queryType: 0
        resourceType: 'microsoft.insights/components'
      }
    }
  ], map(panels, panel => {
    type: 3
    name: panel.name
    content: union({
      version: 'KqlItem/1.0'
      title: panel.title
      query: panel.query
      size: 0
      queryType: 0
      resourceType: 'microsoft.insights/components'
      visualization: panel.visualization
    }, panel.fixedRange ? {
      timeContext: {
        durationMs: ninetyDays
      }
    } : {
      timeContextFromParameter: 'TimeRange'
    })
  }))
  fallbackResourceIds: [
    applicationInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'key-rotation-evidence')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    version: 'Notebook/1.0'
    serializedData: string(workbookContent)
  }
}

output id string = workbook.id
