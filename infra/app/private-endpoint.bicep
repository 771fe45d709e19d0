// One private endpoint for one sub-resource (groupId) of a resource, registered in its private DNS zone
// so the resource's usual host name resolves to the endpoint's private address inside the VNet.
param name string
param location string
param tags object = {}

@description('Subnet of the private endpoint (network.bicep privateEndpointSubnetId).')
param subnetId string

@description('Resource id of the vault or storage account the endpoint connects to (any resource group).')
param targetResourceId string

@description('Sub-resource: vault, blob, queue or table.')
@allowed([
  'vault'
  'blob'
  'queue'
  'table'
])
param groupId string

@description('Resource id of the private DNS zone for that sub-resource.')
param privateDnsZoneId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: targetResourceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

output id string = endpoint.id
