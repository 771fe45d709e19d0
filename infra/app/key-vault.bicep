// A new vault for the rotated keys: RBAC authorization (no access policies), soft delete and purge
// protection so a deleted key secret can always be recovered.
param name string
param location string
param tags object = {}

@description('Days a deleted secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Private-network option: public network access off; reached only through a private endpoint.')
param privateNetwork bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189:public network access is Disabled when privateNetwork is true (tests/infra/test_private_network.py); the default deployment has no VNet, and its app reaches the vault over the public endpoint with Entra ID + RBAC
  // checkov:skip=CKV_AZURE_109:the firewall's default action is Deny when privateNetwork is true (tests/infra/test_private_network.py); Allow otherwise, for the same reason
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
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: privateNetwork ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output id string = vault.id
output name string = vault.name
output vaultUri string = vault.properties.vaultUri
