// A new vault for the rotated keys: RBAC authorization (no access policies), soft delete and purge
// protection so a deleted key secret can always be recovered.
param name string
param location string
param tags object = {}

@description('Days a deleted secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

output id string = vault.id
output name string = vault.name
output vaultUri string = vault.properties.vaultUri
