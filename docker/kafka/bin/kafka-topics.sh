#!/bin/sh
# The Kafka distribution's script of the same name: the topic tool (kafka-tools jar).
exec java -Xmx256m -XX:+UseSerialGC -cp '/opt/kafka/libs/*' "-Dlog4j.configuration=file:/opt/kafka/bin/tools-log4j.properties" \
    org.apache.kafka.tools.TopicCommand "$@"
