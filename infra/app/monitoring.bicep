// Telemetry: Log Analytics + workspace-based Application Insights. Local (instrumentation key) auth is
// off, so only Entra identities holding Monitoring Metrics Publisher can send telemetry.
param logAnalyticsName string
param applicationInsightsName string
param location string
param tags object = {}

@description('Days logs are kept: the evidence workbook shows key age and overdue targets over 90 days (longer than the default 30-day rotation period); the alerts look back at most two days.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 90

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

output applicationInsightsName string = applicationInsights.name
output applicationInsightsId string = applicationInsights.id
output logAnalyticsId string = logAnalytics.id
