#!/bin/sh
# The Kafka distribution's script of the same name (the compose healthcheck runs it).
exec java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp '/opt/kafka/libs/*' \
    "-Dlog4j.configuration=file:/opt/kafka/bin/tools-log4j.properties" kafka.admin.BrokerApiVersionsCommand "$@"
