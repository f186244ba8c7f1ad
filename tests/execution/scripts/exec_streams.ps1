# Test-only: writes one record to every stream, then its result.
param(
    [string]$Message = 'lab'
)

Write-Verbose -Message "verbose: $Message" -Verbose
Write-Warning -Message "warning: $Message"
Write-Information -MessageData "information: $Message"
Write-Progress -Activity 'Streams' -Status "progress: $Message" -PercentComplete 40
Write-Error -Message "error: $Message"
[PSCustomObject]@{ done = $true } | ConvertTo-Json -Compress
