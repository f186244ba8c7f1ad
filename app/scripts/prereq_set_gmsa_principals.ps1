# Adds computer accounts to those allowed to retrieve the gMSA password (offered fix). The list is read fresh and
# sent whole, because Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword replaces it.
param(
    [Parameter(Mandatory = $true)][string]$ServiceAccount,
    [Parameter(Mandatory = $true)][string]$Domain,
    [Parameter(Mandatory = $true)][ValidateCount(1, 64)][string[]]$Add
)

$ErrorActionPreference = 'Stop'
Import-Module -Name ActiveDirectory
$sam = ($ServiceAccount -split '\\')[-1]
$account = Get-ADServiceAccount -Identity $sam -Server $Domain -Properties PrincipalsAllowedToRetrieveManagedPassword
$current = @($account.PrincipalsAllowedToRetrieveManagedPassword)
$before = @(foreach ($dn in $current) {
    [string](Get-ADObject -Identity $dn -Server $Domain -Properties sAMAccountName).sAMAccountName
})
$wanted = @($current)
$added = @()
foreach ($name in $Add) {
    $computer = Get-ADComputer -Identity $name -Server $Domain
    if ($wanted -notcontains $computer.DistinguishedName) {
        $wanted += $computer.DistinguishedName
        $added += [string]$computer.SamAccountName
    }
}
if ($added.Count -gt 0) {
    Write-Information -MessageData ('Adding {0}; keeping {1}.' -f ($added -join ', '), ($before -join ', '))
    Set-ADServiceAccount -Identity $sam -Server $Domain -PrincipalsAllowedToRetrieveManagedPassword $wanted
}
$after = Get-ADServiceAccount -Identity $sam -Server $Domain -Properties PrincipalsAllowedToRetrieveManagedPassword
$names = @(foreach ($dn in $after.PrincipalsAllowedToRetrieveManagedPassword) {
    [string](Get-ADObject -Identity $dn -Server $Domain -Properties sAMAccountName).sAMAccountName
})

[PSCustomObject]@{
    account           = [string]$after.SamAccountName
    principals_before = $before
    added             = $added
    principals        = $names
} | ConvertTo-Json -Compress -Depth 8
