# Signs in to SQL Server with whoever runs it and reads what the checks need: edition, version, the database, and the
# service account's login and roles. Run as the gMSA (task_run -ServiceAccount), signing in at all proves the node can
# retrieve the account's password and that the login works; run as the operator, it reads the account's login.
param(
    [Parameter(Mandatory = $true)][string]$SqlServer,
    [Parameter(Mandatory = $true)][string]$Account,
    [string]$Database = 'AccessManager'
)

$ErrorActionPreference = 'Stop'
$facts = [ordered]@{
    identity = [string][System.Security.Principal.WindowsIdentity]::GetCurrent().Name
    query_ok = $false; error = $null; login = $null
    edition = $null; engine_edition = $null; version = $null; can_view_logins = $null
    database_exists = $null; login_exists = $null; default_database = $null
    database_user = $null; database_roles = @()
}
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
       SUSER_SNAME(),
       DB_ID(@db),
       HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DEFINITION'),
       (SELECT default_database_name FROM sys.server_principals WHERE name = @login),
       (SELECT COUNT(*) FROM sys.server_principals WHERE name = @login)
'@
    [void]$command.Parameters.AddWithValue('@db', $Database)
    [void]$command.Parameters.AddWithValue('@login', $Account)
    $reader = $command.ExecuteReader()
    [void]$reader.Read()
    $facts.edition = [string]$reader.GetValue(0)
    $facts.engine_edition = [int]$reader.GetValue(1)
    $facts.version = [string]$reader.GetValue(2)
    $facts.login = [string]$reader.GetValue(3)
    $facts.database_exists = -not $reader.IsDBNull(4)
    $facts.can_view_logins = ($reader.GetValue(5) -eq 1)
    $facts.default_database = $(if ($reader.IsDBNull(6)) { $null } else { [string]$reader.GetValue(6) })
    $facts.login_exists = ($reader.GetValue(7) -gt 0)
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
        [void]$command.Parameters.AddWithValue('@login', $Account)
        $reader = $command.ExecuteReader()
        $roles = @()
        while ($reader.Read()) {
            $facts.database_user = [string]$reader.GetValue(0)
            if (-not $reader.IsDBNull(1)) { $roles += [string]$reader.GetValue(1) }
        }
        $reader.Close()
        $facts.database_roles = @($roles)
    }
    $facts.query_ok = $true
} catch {
    $facts.error = [string]$_.Exception.Message
} finally {
    if ($connection) { $connection.Dispose() }
}
[PSCustomObject]$facts | ConvertTo-Json -Compress -Depth 8

