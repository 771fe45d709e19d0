// The service: a Python 3.11 Function App on Flex Consumption (FC1) running as the user-assigned
// identity. Flex takes the runtime from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not app settings here (Flex rejects them).
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@description('The settings the app validates (shared/settings.py), built by main.bicep.')
param appSettings object

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

param enableAdminAuth bool = false
param adminAuthClientId string = ''

@description('Private-network option: subnet (delegated to Microsoft.App/environments) the app sends its outbound traffic through; empty = no VNet integration.')
param virtualNetworkSubnetId string = ''

@description('Functions whose triggers the host ignores (AzureWebJobs.<name>.Disabled); how rotation is paused.')
param disabledFunctions array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Settings read by the Functions host and the Azure SDKs rather than by the app: identity-based host
// storage and Entra-authenticated telemetry.
var platformSettings = {
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

var disabledFunctionSettings = toObject(disabledFunctions, fn => 'AzureWebJobs.${fn}.Disabled', fn => 'true')

var allSettings = union(appSettings, platformSettings, disabledFunctionSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:rotation is not latency sensitive and resumes from persisted state after a zone outage; zone-redundant Flex Consumption is not offered in every region
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_222:inbound stays public: Event Grid delivers Key Vault events to the app and admins call its API; the private-network option makes the app's outbound traffic private
  // checkov:skip=CKV_AZURE_17:client certificates would refuse Event Grid's deliveries, which cannot present one; callers authenticate with function keys and, with enableAdminAuth, Entra tokens
  // checkov:skip=CKV_AZURE_67:the protocol version is not a security control here; Flex Consumption serves the app from the platform front end
  // checkov:skip=CKV_AZURE_18:the protocol version is not a security control here; Flex Consumption serves the app from the platform front end
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero by design; every cycle's progress is persisted, so the next instance resumes it
  // checkov:skip=CKV_AZURE_213:Flex Consumption has no App Service health check; the "sweep not running" alert watches the host
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [for setting in items(allSettings): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

// No publishing passwords: azd deploys with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication in front of the whole app: a request without a valid Entra token for
// adminAuthClientId gets 401 before any function runs; the function key is still required on top.
// No path is excluded: with this on, the postdeploy hook subscribes key_vault_events as a WebHook with
// Microsoft Entra authentication (Event Grid sends a bearer token for adminAuthClientId), the design
// Event Grid documents for an Entra-protected function (docs/DEPLOY.md "Admin API authentication").
// The app checks ADMIN_ROLE in X-MS-CLIENT-PRINCIPAL, which it trusts only because this authentication
// is on whenever ADMIN_ROLE is set.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (enableAdminAuth) {
  // checkov evaluates App Service site checks on this config resource:
  // checkov:skip=CKV_AZURE_13:this resource is the App Service Authentication (enableAdminAuth); without it, function keys guard the app
  // checkov:skip=CKV_AZURE_222:inbound stays public: Event Grid delivers Key Vault events to the app and admins call its API
  // checkov:skip=CKV_AZURE_63:App Service HTTP logs do not exist on Flex Consumption; requests and the engine's records go to Application Insights
  // checkov:skip=CKV_AZURE_65:detailed error pages are an App Service (IIS) feature absent on Linux Flex Consumption; errors go to Application Insights
  // checkov:skip=CKV_AZURE_66:failed request tracing is an App Service (IIS) feature absent on Linux Flex Consumption; failures go to Application Insights
  // checkov:skip=CKV_AZURE_80:a Python app; there is no .NET Framework version to set
  // checkov:skip=CKV_AZURE_88:Flex Consumption has no Azure Files content share; the package is read from a blob container with the app's identity
  // checkov:skip=CKV_AZURE_70:HTTPS only is the site's httpsOnly (checked there) and httpSettings.requireHttps here; checkov 3.3.30 crashes reading this check on a conditional config resource
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: adminAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            adminAuthClientId
            'api://${adminAuthClientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

output name string = functionApp.name
output id string = functionApp.id
output url string = 'https://${functionApp.properties.defaultHostName}'
