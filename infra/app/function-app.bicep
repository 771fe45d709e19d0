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
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
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

// App Service Authentication in front of the admin API: a request without a valid Entra token for
// adminAuthClientId gets 401 before any function runs; the function key is still required on top.
// Event Grid cannot present an Entra token to the webhook, so its path is excluded and stays guarded
// by the Event Grid system key. The app checks ADMIN_ROLE in X-MS-CLIENT-PRINCIPAL, which it trusts
// only because this authentication is on whenever ADMIN_ROLE is set.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (enableAdminAuth) {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/runtime/webhooks/eventgrid'
      ]
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
