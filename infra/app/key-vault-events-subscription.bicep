// Deployed by infra/hooks/postdeploy after the code is deployed, into the vault's resource group:
// Event Grid validates an AzureFunction destination against the deployed function, so this cannot be
// part of `azd provision`. Near-expiry and expired secret events go to the key_vault_events function;
// undeliverable events are dead-lettered to blob storage with the system topic's own identity.
//
// Two destinations (docs/DEPLOY.md "Admin API authentication"):
// - default: the AzureFunction endpoint type; Event Grid resolves the function's system key itself.
// - entraApplicationIdOrUri set (the app runs behind App Service Authentication, ENABLE_ADMIN_AUTH):
//   a WebHook to the function's Event Grid webhook with Microsoft Entra authentication, so every
//   delivery carries a bearer token for that app registration - what Event Grid documents for an
//   Entra-protected function. The URL holds the Event Grid extension's system key: it is a @secure()
//   parameter, kept out of deployment history; Event Grid stores it encrypted and does not return it.
param systemTopicName string

@description('Resource id of the Function App (Microsoft.Web/sites).')
param functionAppId string

@description('Resource id of the storage account holding the dead-letter container.')
param deadLetterStorageAccountId string

param deadLetterContainerName string

@description('Function that handles Key Vault events (function_app.py).')
param functionName string = 'key_vault_events'

@description('Entra app registration (client id or Application ID URI) protecting the Function App; empty = AzureFunction destination.')
param entraApplicationIdOrUri string = ''

@description('Tenant of that app registration (entraApplicationIdOrUri).')
param entraTenantId string = ''

@secure()
@description('https://<host>/runtime/webhooks/eventgrid?functionName=<fn>&code=<eventgrid_extension system key> (entraApplicationIdOrUri).')
param webhookEndpointUrl string = ''

@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('An event older than this is dead-lettered; a day covers a long outage of the app.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

var deliverWithEntra = !empty(entraApplicationIdOrUri)

// Event Grid resolves the function's system key itself; no key passes through this template.
var functionDestination = {
  endpointType: 'AzureFunction'
  properties: {
    resourceId: '${functionAppId}/functions/${functionName}'
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

var entraWebhookDestination = {
  endpointType: 'WebHook'
  properties: {
    endpointUrl: webhookEndpointUrl
    azureActiveDirectoryApplicationIdOrUri: entraApplicationIdOrUri
    azureActiveDirectoryTenantId: entraTenantId
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

resource keyVaultEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'key-vault-events-to-function'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: deliverWithEntra ? entraWebhookDestination : functionDestination
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = keyVaultEvents.id
output name string = keyVaultEvents.name
