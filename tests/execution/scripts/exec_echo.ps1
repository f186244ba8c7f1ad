# Test-only: the trivial action (benchmarks, stream tests).
param(
    [string]$Text = ''
)

[PSCustomObject]@{ text = $Text } | ConvertTo-Json -Compress
