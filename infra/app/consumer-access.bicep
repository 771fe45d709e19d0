// Deployed into each consumer's resource group: the Consumer Refresher custom role on that one App Service
// site, or on the API Management service that holds the named value, so the service can refresh and read
// those references and nothing else.
param consumerId string
param principalId string

@description('Name (GUID) of the AI Services Key Rotation Consumer Refresher custom role definition.')
param consumerRoleGuid string

var segments = split(consumerId, '/')
var isSite = toLower(segments[6]) == 'microsoft.web'

resource site 'Microsoft.Web/sites@2023-12-01' existing = if (isSite) {
  name: segments[8]
}

resource apiManagement 'Microsoft.ApiManagement/service@2023-05-01-preview' existing = if (!isSite) {
  name: segments[8]
}

// AI Services Key Rotation Consumer Refresher (custom role) for the service identity, on the site.
resource siteRefresher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isSite) {
  name: guid(site.id, principalId, consumerRoleGuid)
  scope: site
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', consumerRoleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// AI Services Key Rotation Consumer Refresher (custom role) for the service identity, on the API Management
// service holding the named value.
resource apiManagementRefresher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isSite) {
  name: guid(apiManagement.id, principalId, consumerRoleGuid)
  scope: apiManagement
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', consumerRoleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
