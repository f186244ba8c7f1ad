# Sets who may retrieve the gMSA password; the list given replaces the current one (offered fix).
param(
    [Parameter(Mandatory = $true)][string]$ServiceAccount,
    [Parameter(Mandatory = $true)][string]$Domain,
    [Parameter(Mandatory = $true)][string[]]$Principals
)

$ErrorActionPreference = 'Stop'
Import-Module -Name ActiveDirectory
$sam = ($ServiceAccount -split '\\')[-1]
$before = Get-ADServiceAccount -Identity $sam -Server $Domain -Properties PrincipalsAllowedToRetrieveManagedPassword
Write-Information -MessageData ('Allowing {0} principal(s) to retrieve the password.' -f $Principals.Count)
Set-ADServiceAccount -Identity $sam -Server $Domain -PrincipalsAllowedToRetrieveManagedPassword $Principals
$after = Get-ADServiceAccount -Identity $sam -Server $Domain -Properties PrincipalsAllowedToRetrieveManagedPassword
$names = @(foreach ($dn in $after.PrincipalsAllowedToRetrieveManagedPassword) {
    (Get-ADObject -Identity $dn -Server $Domain -Properties sAMAccountName).sAMAccountName
})

[PSCustomObject]@{
    account           = $after.SamAccountName
    principals_before = @($before.PrincipalsAllowedToRetrieveManagedPassword).Count
    principals        = $names
} | ConvertTo-Json -Compress -Depth 8
