# Reads, without changing anything, what the prerequisite checks need to know about this node.
param(
    [Parameter(Mandatory = $true)][string]$ServiceAccount,
    [Parameter(Mandatory = $true)][string]$SqlServer,
    [Parameter(Mandatory = $true)][string]$SqlHost,
    [int]$SqlPort = 1433,
    [string]$Database = 'AccessManager'
)

$ErrorActionPreference = 'Stop'

function Get-PendingReboot {
    $reasons = @()
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') {
        $reasons += 'Component Based Servicing'
    }
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') {
        $reasons += 'Windows Update'
    }
    $sessionManager = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -ErrorAction SilentlyContinue
    if ($sessionManager -and $sessionManager.PendingFileRenameOperations) {
        $reasons += 'Pending file rename operations'
    }
    [PSCustomObject]@{ pending = ($reasons.Count -gt 0); reasons = @($reasons) }
}

function Get-InstalledAms {
    $key = 'HKLM:\SOFTWARE\Lithnet\Access Manager Service'
    $registryVersion = $null
    if (Test-Path -LiteralPath $key) {
        $registryVersion = (Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue).Version
    }
    $uninstall = Get-ChildItem -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall' |
        Get-ItemProperty -ErrorAction SilentlyContinue |
        Where-Object { $_.DisplayName -eq 'Lithnet Access Manager Service' } |
        Select-Object -First 1
    $service = Get-CimInstance -ClassName Win32_Service -Filter "Name='lithnetams'"
    $serviceInfo = $null
    if ($service) {
        $serviceInfo = [PSCustomObject]@{
            status     = $service.State
            start_mode = $service.StartMode
            account    = $service.StartName
            image_path = $service.PathName
        }
    }
    [PSCustomObject]@{
        installed         = [bool]($registryVersion -or $uninstall -or $service)
        registry_version  = $registryVersion
        display_version   = $(if ($uninstall) { $uninstall.DisplayVersion } else { $null })
        service           = $serviceInfo
    }
}

function Test-ServiceAccount {
    $result = [ordered]@{ account = $ServiceAccount; result = $null; error = $null }
    try {
        Import-Module -Name ActiveDirectory -ErrorAction Stop
        $sam = ($ServiceAccount -split '\\')[-1]
        $result.result = [bool](Test-ADServiceAccount -Identity $sam)
    } catch {
        $result.error = $_.Exception.Message
    }
    [PSCustomObject]$result
}

function Read-SqlFacts {
    $facts = [ordered]@{
        host = $SqlHost; port = $SqlPort; tcp = $false; query_ok = $false; error = $null
        edition = $null; engine_edition = $null; version = $null; can_view_logins = $null
        database_exists = $null; login_exists = $null; default_database = $null
        database_user = $null; database_roles = @()
    }
    $probe = Test-NetConnection -ComputerName $SqlHost -Port $SqlPort -WarningAction SilentlyContinue
    $facts.tcp = [bool]$probe.TcpTestSucceeded
    if (-not $facts.tcp) { return [PSCustomObject]$facts }
    $connection = $null
    try {
        $builder = [System.Data.SqlClient.SqlConnectionStringBuilder]::new()
        $builder['Data Source'] = $SqlServer
        $builder['Initial Catalog'] = 'master'
        $builder['Integrated Security'] = $true
        $builder['Connect Timeout'] = 15
        $connection = [System.Data.SqlClient.SqlConnection]::new($builder.ConnectionString)
        $connection.Open()
        $command = $connection.CreateCommand()
        $command.CommandText = @'
SELECT CAST(SERVERPROPERTY('Edition') AS nvarchar(128)),
       CAST(SERVERPROPERTY('EngineEdition') AS int),
       CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)),
       DB_ID(@db),
       HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DEFINITION'),
       (SELECT default_database_name FROM sys.server_principals WHERE name = @login),
       (SELECT COUNT(*) FROM sys.server_principals WHERE name = @login)
'@
        [void]$command.Parameters.AddWithValue('@db', $Database)
        [void]$command.Parameters.AddWithValue('@login', $ServiceAccount)
        $reader = $command.ExecuteReader()
        [void]$reader.Read()
        $facts.edition = $reader.GetValue(0)
        $facts.engine_edition = $reader.GetValue(1)
        $facts.version = $reader.GetValue(2)
        $facts.database_exists = -not $reader.IsDBNull(3)
        $facts.can_view_logins = ($reader.GetValue(4) -eq 1)
        $facts.default_database = $(if ($reader.IsDBNull(5)) { $null } else { $reader.GetValue(5) })
        $facts.login_exists = ($reader.GetValue(6) -gt 0)
        $reader.Close()
        if ($facts.database_exists) {
            $connection.ChangeDatabase($Database)
            $command = $connection.CreateCommand()
            $command.CommandText = @'
SELECT u.name, r.name
FROM sys.database_principals AS u
LEFT JOIN sys.database_role_members AS m ON m.member_principal_id = u.principal_id
LEFT JOIN sys.database_principals AS r ON r.principal_id = m.role_principal_id
WHERE u.sid = SUSER_SID(@login)
'@
            [void]$command.Parameters.AddWithValue('@login', $ServiceAccount)
            $reader = $command.ExecuteReader()
            $roles = @()
            while ($reader.Read()) {
                $facts.database_user = $reader.GetValue(0)
                if (-not $reader.IsDBNull(1)) { $roles += $reader.GetValue(1) }
            }
            $reader.Close()
            $facts.database_roles = @($roles)
        }
        $facts.query_ok = $true
    } catch {
        $facts.error = $_.Exception.Message
    } finally {
        if ($connection) { $connection.Dispose() }
    }
    [PSCustomObject]$facts
}

Write-Progress -Activity 'Prerequisites' -Status 'Operating system and features' -PercentComplete 10
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$computer = Get-CimInstance -ClassName Win32_ComputerSystem
$feature = Get-WindowsFeature -Name 'Failover-Clustering'
$pending = Get-PendingReboot
if ($feature.InstallState -eq 'InstallPending') {
    $pending = [PSCustomObject]@{ pending = $true; reasons = @($pending.reasons) + 'Failover-Clustering install' }
}
Write-Progress -Activity 'Prerequisites' -Status 'Access Manager and the service account' -PercentComplete 40
$ams = Get-InstalledAms
$gmsa = Test-ServiceAccount
Write-Progress -Activity 'Prerequisites' -Status 'SQL Server' -PercentComplete 70
$sql = Read-SqlFacts
Write-Progress -Activity 'Prerequisites' -Status 'Done' -PercentComplete 100 -Completed

[PSCustomObject]@{
    computer_name  = $env:COMPUTERNAME
    domain         = $computer.Domain
    part_of_domain = [bool]$computer.PartOfDomain
    os             = [PSCustomObject]@{
        caption      = $os.Caption
        version      = $os.Version
        build        = $os.BuildNumber
        product_type = $os.ProductType
    }
    feature        = [PSCustomObject]@{ name = 'Failover-Clustering'; install_state = [string]$feature.InstallState }
    pending_reboot = $pending
    ams            = $ams
    gmsa_test      = $gmsa
    sql            = $sql
} | ConvertTo-Json -Compress -Depth 8
