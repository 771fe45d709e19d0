// Deployed into the vault's resource group (new or existing vault): the service's access to the vault
// and the Event Grid system topic that publishes the vault's near-expiry events. The subscription to
// that topic is created after the code is deployed (infra/hooks/postdeploy), because Event Grid
// validates that the target function exists.
param keyVaultName string
param systemTopicName string
param principalId string
param tags object = {}

// Key Vault Secrets Officer: read and write the managed secrets (slot values, pointer, active value).
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Key Vault Secrets Officer for the service identity, on the vault.
resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The topic's own identity writes dead-lettered events to blob storage (shared keys are off there).
resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: vault.location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

output vaultId string = vault.id
output vaultUri string = vault.properties.vaultUri
output systemTopicName string = systemTopic.name
output systemTopicPrincipalId string = systemTopic.identity.principalId
