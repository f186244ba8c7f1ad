# Opens the farm's SQL Server connection string as whoever runs it (the service account, in a scheduled task) and reads the server, the database and the account's role in it: the sign-in each node's service makes when it starts.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$ConnectionString,
    [ValidateRange(1, 120)][int]$TimeoutSeconds = 15
)

$ErrorActionPreference = 'Stop'

$result = [ordered]@{
    computer            = $env:COMPUTERNAME
    identity            = [string][System.Security.Principal.WindowsIdentity]::GetCurrent().Name
    data_source         = $null
    database            = $null
    integrated_security = $null
    opened              = $false
    login               = $null
    current_database    = $null
    edition             = $null
    engine_edition      = $null
    version             = $null
    is_db_owner         = $null
    error               = $null
}
$connection = $null
try {
    # The builder parses the text (an unknown keyword throws); the value is never part of the script.
    $builder = [System.Data.SqlClient.SqlConnectionStringBuilder]::new($ConnectionString)
    $result.data_source = [string]$builder.DataSource
    $result.database = [string]$builder.InitialCatalog
    $result.integrated_security = [bool]$builder.IntegratedSecurity
    $builder.ConnectTimeout = $TimeoutSeconds
    $connection = [System.Data.SqlClient.SqlConnection]::new($builder.ConnectionString)
    Write-Progress -Activity 'SQL Server' -Status ('Connecting to {0}' -f $result.data_source) -PercentComplete 30
    $connection.Open()
    $result.opened = $true
    $command = $connection.CreateCommand()
    $command.CommandText = @'
SELECT CAST(SERVERPROPERTY('Edition') AS nvarchar(128)),
       CAST(SERVERPROPERTY('EngineEdition') AS int),
       CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)),
       SUSER_SNAME(),
       DB_NAME(),
       IS_ROLEMEMBER('db_owner')
'@
    $reader = $command.ExecuteReader()
    [void]$reader.Read()
    $result.edition = [string]$reader.GetValue(0)
    $result.engine_edition = [int]$reader.GetValue(1)
    $result.version = [string]$reader.GetValue(2)
    $result.login = [string]$reader.GetValue(3)
    $result.current_database = [string]$reader.GetValue(4)
    $result.is_db_owner = (-not $reader.IsDBNull(5)) -and ([int]$reader.GetValue(5) -eq 1)
    $reader.Close()
} catch {
    $result.error = [string]$_.Exception.Message
} finally {
    if ($connection) { $connection.Dispose() }
}

[PSCustomObject]$result | ConvertTo-Json -Compress -Depth 8
